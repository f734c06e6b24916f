"""Request ids and access log lines of a running service, over HTTP and gRPC."""

from __future__ import annotations

import io
import json
import logging
import re
import socket

import grpc
import pytest
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from app.logs import configure_logging
from tests.e2e.test_ingest_reliability import _encode, chat_spans
from tests.support.grpc_client import trace_stub
from tests.support.service import free_port

API = "/umbraco/ai/management/api/v1"
NEW_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def logs():
    """The service's log lines, as the JSON objects `ai-usage serve` would write to stderr."""
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = configure_logging("INFO", "json", stream)

    def lines() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield lines
    root.removeHandler(handler)
    root.setLevel(level)


def access_lines(lines: list[dict]) -> list[dict]:
    return [line for line in lines if line["logger"] == "ai_usage.access"]


def test_a_request_id_is_returned_and_on_every_line_logged_for_the_request(service, logs):
    kept = requests.get(f"{service.url}/health/live?probe=1", headers={"X-Request-Id": "lb-7f3a.9:x_y"}, timeout=10)
    made = requests.get(f"{service.url}/health/live", timeout=10)
    assert kept.headers["X-Request-Id"] == "lb-7f3a.9:x_y"
    assert NEW_ID.fullmatch(made.headers["X-Request-Id"])

    client = service.database.client()
    client.command("RENAME TABLE operations TO operations_offline")
    try:
        failed = requests.get(f"{service.url}{API}/audit-logs", headers={"X-Request-Id": "failing-query-1"}, timeout=10)
    finally:
        client.command("RENAME TABLE operations_offline TO operations")
    assert failed.status_code == 500 and failed.headers["X-Request-Id"] == "failing-query-1"

    lines = logs()
    first, second = (line for line in access_lines(lines) if line["path"] == "/health/live")
    assert first["request_id"] == "lb-7f3a.9:x_y" and second["request_id"] == made.headers["X-Request-Id"]
    assert (first["method"], first["route"], first["status"], first["remote_addr"]) == ("GET", "/health/live", 200, "127.0.0.1")
    assert first["duration_ms"] >= 0 and first["user_agent"].startswith("python-requests/")
    assert "probe" not in json.dumps(first), "the query string is never logged"

    during = [line for line in lines if line.get("request_id") == "failing-query-1"]
    error, access = during
    assert error["level"] == "ERROR" and error["logger"] == "app.api" and "UNKNOWN_TABLE" in error["exception"]
    assert (access["logger"], access["status"], access["route"]) == ("ai_usage.access", 500, f"{API}/audit-logs")
    # The writer thread's lines belong to no request.
    assert all("request_id" not in line for line in lines if line["logger"].startswith(("ingest.", "clickhouse.")))


@pytest.mark.parametrize(
    "value",
    [
        b"abc\r\n forged-line",  # obsolete line folding: a CR/LF inside the value
        b"x" * 129,
        b'abc"} {"level": "ERROR"',
        b"\x1b[31mred",
        b"with space",
    ],
    ids=["folded-crlf", "overlong", "json-quote", "escape", "space"],
)
def test_an_unsafe_incoming_request_id_is_replaced(service, logs, value):
    status, headers = _raw_get(service.port, "/health/live", [(b"X-Request-Id", value)])
    lines = logs()  # each line parsed as JSON: nothing injected broke one
    assert status == 200  # the development server passes every one of these to the app
    returned = headers["x-request-id"]
    assert NEW_ID.fullmatch(returned), returned
    (line,) = [line for line in access_lines(lines) if line.get("request_id") == returned]
    assert line["path"] == "/health/live"
    assert not any("forged-line" in line.get("request_id", "") for line in lines)


def test_grpc_calls_get_request_ids_and_access_lines_without_keys(make_service, logs):
    service = make_service(grpc_port=free_port(), ingest_keys=("ingest-key-grpc-1",))
    channel, stub = trace_stub(service.runtime.grpc_port)
    request = ExportTraceServiceRequest.FromString(_encode(chat_spans(2)))
    with channel:
        _, call = stub.Export.with_call(
            request, metadata=(("authorization", "Bearer ingest-key-grpc-1"), ("x-request-id", "grpc-req-1")), timeout=10
        )
        assert dict(call.initial_metadata())["x-request-id"] == "grpc-req-1"
        with pytest.raises(grpc.RpcError) as raised:
            stub.Export(request, metadata=(("authorization", "Bearer wrong-key-grpc-2"), ("x-request-id", "bad id!")), timeout=10)
        assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
        replaced = dict(raised.value.initial_metadata())["x-request-id"]
    assert NEW_ID.fullmatch(replaced)

    lines = logs()
    ok, refused = (line for line in access_lines(lines) if line["method"] == "gRPC")
    assert (ok["request_id"], ok["status"]) == ("grpc-req-1", "OK")
    assert ok["path"] == "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
    assert ok["remote_addr"].startswith(("ipv4:127.0.0.1", "ipv6:"))
    assert (refused["request_id"], refused["status"]) == (replaced, "UNAUTHENTICATED")
    text = json.dumps(lines)
    assert "ingest-key-grpc-1" not in text and "wrong-key-grpc-2" not in text


def _raw_get(port: int, path: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, dict[str, str]]:
    """A GET sent byte for byte, so that values no HTTP client would send reach the server."""
    lines = [f"GET {path} HTTP/1.1".encode(), b"Host: 127.0.0.1", b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    parsed = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    return status, parsed
