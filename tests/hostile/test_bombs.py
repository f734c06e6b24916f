"""Decompression bombs against the real `ai-usage serve` (gunicorn): refused quickly, in bounded memory, storing nothing.

The process runs with an 8 MiB body limit (conftest.SERVED_MAX_BODY). Each
bomb is about 4 MB on the wire and 4 GiB inflated. The worker's peak resident
memory is reset before each bomb (/proc/PID/clear_refs) and read after it:
it may grow by the inflated limit and buffers, never by anything like the
bomb's inflated size.
"""

from __future__ import annotations

import gzip
import random
import re
import time
from pathlib import Path

import grpc
import pytest
import requests
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.hostile.bombs import GZIP, RAW_DEFLATE, ZLIB, bomb, grpc_call
from tests.hostile.conftest import SERVED_MAX_BODY
from tests.hostile.payloads import PROTOBUF, Ids, marker, template
from tests.support.grpc_client import trace_stub

GiB = 1024**3
MiB = 1024**2
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
# Peak memory growth allowed while refusing one bomb (measured: 15-30 MiB): the inflated limit
# (8 MiB), the compressed body (4 MB) and slack for buffers and allocator.
MAX_GROWTH = 64 * MiB
# A bomb is refused at once: inflating 8 MiB takes milliseconds.
MAX_SECONDS = 5


def worker_pid(served) -> int:
    """The gunicorn worker: the serving process's only child."""
    master = served.process.pid
    children = [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and _parent(entry) == master
    ]
    assert len(children) == 1, children
    return children[0]


def _parent(entry: Path) -> int | None:
    try:
        return int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


class PeakMemory:
    """How far the worker's resident memory rose above its level before the block."""

    def __init__(self, pid: int):
        self.pid = pid

    def __enter__(self):
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        self.before = memory_kib(self.pid, "VmRSS")
        return self

    def __exit__(self, *exc):
        self.growth = (memory_kib(self.pid, "VmHWM") - self.before) * 1024
        return False


def stored_total(served) -> int:
    response = requests.get(f"{served.url}/umbraco/ai/management/api/v1/audit-logs", params={"take": 0}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["total"]


@pytest.fixture(scope="module")
def bombs():
    return {name: bomb(wbits, 4 * GiB) for name, wbits in (("gzip", GZIP), ("deflate", ZLIB), ("raw deflate", RAW_DEFLATE))}


@pytest.mark.parametrize("media", ["application/x-protobuf", "application/json"])
@pytest.mark.parametrize(
    ("container", "encoding", "chunked"),
    [("gzip", "gzip", False), ("gzip", "x-gzip", True), ("deflate", "deflate", False), ("raw deflate", "deflate", True)],
)
def test_an_http_bomb_is_413_quickly_in_bounded_memory(served, bombs, media, container, encoding, chunked):
    body = bombs[container]
    assert len(body) < SERVED_MAX_BODY and len(body) < 5 * MiB
    before = stored_total(served)
    pid = worker_pid(served)
    # Chunked: no Content-Length, so only the streaming limits can stop it.
    data = (body[i:i + 65536] for i in range(0, len(body), 65536)) if chunked else body
    with PeakMemory(pid) as peak:
        started = time.monotonic()
        response = requests.post(f"{served.url}/v1/traces", data=data, timeout=30,
                                 headers={"Content-Type": media, "Content-Encoding": encoding})
        elapsed = time.monotonic() - started
    assert response.status_code == 413, response.content[:300]
    assert response.headers["Content-Type"] == media
    message = status_pb2.Status.FromString(response.content).message if "protobuf" in media else response.json()["message"]
    assert "inflates past the limit" in message
    assert elapsed < MAX_SECONDS
    assert peak.growth < MAX_GROWTH, f"worker memory rose by {peak.growth / MiB:.0f} MiB"
    assert stored_total(served) == before


@pytest.mark.parametrize("encoding", ["gzip, gzip", "gzip;q=1", "br", "compress", "identity, gzip", "GZIP "])
def test_other_content_encodings_are_refused_or_understood_never_a_500(served, bombs, encoding):
    response = requests.post(f"{served.url}/v1/traces", data=bombs["gzip"], timeout=30,
                             headers={"Content-Type": "application/x-protobuf", "Content-Encoding": encoding})
    # "GZIP " is gzip (case and spaces do not matter): the bomb is then 413; the others are not supported.
    assert response.status_code == (413 if encoding == "GZIP " else 415), response.content[:300]
    assert status_pb2.Status.FromString(response.content).code == 3


def test_an_oversize_chunked_body_is_413_without_reading_it_all(served):
    pid = worker_pid(served)
    chunk = b"\x0a" * MiB
    with PeakMemory(pid) as peak:
        response = requests.post(f"{served.url}/v1/traces", data=(chunk for _ in range(64)), timeout=30,
                                 headers={"Content-Type": "application/x-protobuf"})
    assert response.status_code == 413
    assert peak.growth < MAX_GROWTH


def test_a_grpc_gzip_bomb_is_refused_quickly_in_bounded_memory(served, bombs):
    before = stored_total(served)
    pid = worker_pid(served)
    with PeakMemory(pid) as peak:
        status, message, elapsed = grpc_call(served.grpc_port, EXPORT, bombs["gzip"], compressed=True)
    assert status in (grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], grpc.StatusCode.INVALID_ARGUMENT.value[0]), (status, message)
    assert elapsed < MAX_SECONDS
    assert peak.growth < MAX_GROWTH, f"worker memory rose by {peak.growth / MiB:.0f} MiB"
    assert stored_total(served) == before


def truncated_export() -> bytes:
    """A gzip-compressed export of real spans, cut in the middle of its spans."""
    request, _ = template(Ids(random.Random(8)), 0)
    compressed = gzip.compress(request.SerializeToString())
    return compressed[: len(compressed) // 2]


# Broken compression is refused by grpc core itself, before the service's
# handler runs, with INTERNAL and a message of its own (gRPC's status code
# document prescribes INTERNAL for a message that cannot be decompressed; grpc
# core answers an unknown grpc-encoding the same way). That is the transport,
# not a crash of the service (an exception in the handler would be UNKNOWN,
# "Exception calling application"): the test checks the message is grpc
# core's, the answer quick, nothing stored, and the service still serving.
GRPC_CORE = "ecompression|ncoding"


@pytest.mark.parametrize(
    ("label", "message", "compressed", "encoding", "code"),
    [
        ("compressed flag with no encoding", gzip.compress(b"x"), True, "identity", grpc.StatusCode.INTERNAL),
        ("unknown encoding", b"x", True, "snappy", grpc.StatusCode.INTERNAL),
        ("corrupt gzip", b"\x1f\x8b\x08\x00 not gzip at all", True, "gzip", grpc.StatusCode.INTERNAL),
        ("truncated gzip", truncated_export(), True, "gzip", grpc.StatusCode.INTERNAL),
        # Past the transport, the service's own decoder: a cut message is INVALID_ARGUMENT.
        ("message longer than its frame", b"\x0a\x05ab", False, "identity", grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
def test_broken_grpc_compression_is_answered_as_grpc_prescribes(served, label, message, compressed, encoding, code):
    before = stored_total(served)
    status, detail, elapsed = grpc_call(served.grpc_port, EXPORT, message, compressed=compressed, encoding=encoding)
    assert status == code.value[0], (label, status, detail)
    if code == grpc.StatusCode.INTERNAL:
        assert re.search(GRPC_CORE, detail), detail
    assert elapsed < MAX_SECONDS
    assert stored_total(served) == before


def test_the_service_stores_valid_exports_after_the_bombs(served):
    ids = Ids(random.Random(9))
    before = stored_total(served)
    http_marker, grpc_marker = marker(ids, 0, PROTOBUF), marker(ids, 1, PROTOBUF)
    response = requests.post(f"{served.url}/v1/traces", data=http_marker.body, timeout=10,
                             headers={"Content-Type": PROTOBUF})
    assert response.status_code == 200
    channel, stub = trace_stub(served.grpc_port)
    with channel:
        stub.Export(ExportTraceServiceRequest.FromString(grpc_marker.body), timeout=10)
    assert stored_total(served) == before + 2
    for payload in (http_marker, grpc_marker):
        (trace, span), = payload.keys
        entry = requests.get(f"{served.url}/umbraco/ai/management/api/v1/audit-logs/{trace}{span}", timeout=10)
        assert entry.status_code == 200
    assert requests.get(f"{served.url}/health/ready", timeout=10).status_code == 200
