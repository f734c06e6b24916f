"""Ingest throughput, end to end: client processes POST OTLP/HTTP bodies to the real service.

Each client process holds a few pre-built bodies and sends them from several
threads with keep-alive connections, fresh ids on every request. The figure
that counts is the number of operations STORED per second: read from the
tables after the service has stopped, counting rows whose `received_at` falls
in the measurement window (so warm-up and the final drain are excluded).

The same bodies are decoded in a loop in the bench process beforehand, with
nothing else running, to give the raw decode rate the end-to-end rate is
compared with.
"""

from __future__ import annotations

import http.client
import json
import math
import random
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from bench.payloads import JSON, PROTOBUF, SPANS_PER_REQUEST, IdSource, Template, build_templates, fresh_body
from bench.service import PeakRss, Service, in_child, stored_counts, tree_cpu_seconds
from bench.stats import percentile

TEMPLATES_PER_CLIENT = 3
PROFILE_RATE = 50  # py-spy samples per second: enough for a profile, little load on 2 cores
MEDIA = {"protobuf": PROTOBUF, "json": JSON}


@dataclass
class ClientResult:
    requests: int = 0
    spans: int = 0  # spans in requests answered 200
    rejected_spans: int = 0  # partial-success rejections inside 200 answers
    retry_answers: int = 0  # 503 / 429: told to come back later
    errors: int = 0  # anything else, including connection errors
    first_error: str = ""
    latencies_ms: list[float] = field(default_factory=list)
    last_answer: float = 0.0  # Unix time of the last answer received

    def add(self, other: ClientResult) -> None:
        self.requests += other.requests
        self.spans += other.spans
        self.rejected_spans += other.rejected_spans
        self.retry_answers += other.retry_answers
        self.errors += other.errors
        self.first_error = self.first_error or other.first_error
        self.latencies_ms.extend(other.latencies_ms)
        self.last_answer = max(self.last_answer, other.last_answer)


@dataclass
class IngestResult:
    encoding: str
    clients: int
    threads: int
    window_seconds: float
    stored_in_window: int
    stored_total: int
    acknowledged_spans: int
    requests: int
    retry_answers: int
    errors: int
    rejected_spans: int
    first_error: str
    latency_p50_ms: float
    latency_p95_ms: float
    decode_spans_per_second: float
    decode_map_spans_per_second: float  # the service's own decode and map, one core
    body_bytes: int
    peak_rss: int
    service_cores: float  # CPU the service used in the window, in cores
    client_cores: float  # CPU the load generator used in the window (0 when not measured)
    profile: str = ""
    inserts_in_window: int = 0  # the writer's group commits in the window

    @property
    def stored_per_second(self) -> float:
        return self.stored_in_window / self.window_seconds if self.window_seconds else 0.0

    @property
    def ratio(self) -> float:
        return self.stored_per_second / self.decode_spans_per_second if self.decode_spans_per_second else 0.0


def decode_rates(templates: list[Template], seconds: float = 3.0) -> tuple[float, float]:
    """Spans/s on one core of the raw parse (FromString / json.loads) and of the
    service's own decode and map of the same bodies (`IngestService.receive`
    without the commit: the compiled pass for protobuf where it is built, else
    `codec.decode` and `map_records`)."""
    from ingest import codec
    from ingest.config import IngestConfig
    from ingest.fastmap import compiled_mapper
    from ingest.mapping import Mapper
    from ingest.pipeline import map_records

    ids = IdSource(0xDEC0, 0)
    bodies = [fresh_body(t, ids) for t in templates]
    media = templates[0].media
    parse = ExportTraceServiceRequest.FromString if media == PROTOBUF else json.loads
    mapper = Mapper(IngestConfig())
    compiled = compiled_mapper(mapper) if media == PROTOBUF else None

    def decode_and_map(body: bytes) -> object:
        done = compiled.map(body) if compiled is not None else None
        return done if done is not None else map_records(mapper, codec.decode(body, media))

    def rate(function: Any) -> float:
        spans, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            for body in bodies:
                function(body)
                spans += SPANS_PER_REQUEST
        return spans / (time.perf_counter() - started)

    return rate(parse), rate(decode_and_map)


def _client_main(
    client: int, media: str, port: int, threads: int, run_tag: int, go: Any, start_at: Any, stop_offset: float | None,
    max_requests: int | None, ready: Any, results: Any,
) -> None:
    """One load-generating process: `threads` keep-alive connections, fresh ids per request.

    Sends until `stop_offset` seconds after the shared start, or `max_requests` per thread.
    """
    templates = build_templates(seed=client + 1, count=TEMPLATES_PER_CLIENT)[media]
    ready.put(client)
    go.wait()
    deadline = start_at.value + stop_offset if stop_offset is not None else float("inf")
    result = ClientResult()
    lock = threading.Lock()

    def run(thread: int) -> None:
        ids = IdSource(run_tag, client * threads + thread)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Content-Type": media}
        sent = 0
        local = ClientResult()
        while time.time() < deadline and (max_requests is None or sent < max_requests):
            template = templates[sent % len(templates)]
            body = fresh_body(template, ids)
            sent += 1
            began = time.perf_counter()
            try:
                connection.request("POST", "/v1/traces", body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as error:
                local.errors += 1
                local.first_error = local.first_error or repr(error)
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                continue
            local.latencies_ms.append((time.perf_counter() - began) * 1000)
            local.last_answer = time.time()
            local.requests += 1
            if response.status == 200:
                local.spans += template.spans
                local.rejected_spans += _rejected(payload, media)
            elif response.status in (429, 503):
                # What an OTLP exporter does: wait as told, then retry with new data.
                local.retry_answers += 1
                time.sleep(float(response.getheader("Retry-After") or 1))
            else:
                local.errors += 1
                local.first_error = local.first_error or f"HTTP {response.status}: {payload[:200]!r}"
        connection.close()
        with lock:
            result.add(local)

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put(result)


def _rejected(payload: bytes, media: str) -> int:
    if not payload:
        return 0
    if media == PROTOBUF:
        return ExportTraceServiceResponse.FromString(payload).partial_success.rejected_spans
    partial = json.loads(payload).get("partialSuccess") or {}
    return int(partial.get("rejectedSpans") or 0)


def run_ingest(
    encoding: str,
    *,
    clients: int,
    threads: int,
    duration: float,
    warmup: float,
    spans: int | None,
    workdir: Path,
    keep: bool,
    profile_dir: Path | None,
    log: Any,
) -> IngestResult:
    media = MEDIA[encoding]
    if clients * threads > 256:
        raise ValueError("at most 256 client connections (one id byte each)")
    log(f"ingest {encoding}: raw decode rate")
    decode_rate, decode_map_rate = decode_rates(build_templates(seed=99, count=TEMPLATES_PER_CLIENT)[media])
    body_bytes = build_templates(seed=1, count=1)[media][0].size

    data_dir = workdir / f"ingest-{encoding}"
    shutil.rmtree(data_dir, ignore_errors=True)
    service = Service(data_dir, workdir / f"ingest-{encoding}.log").start()
    context = get_context("spawn")
    go, ready, results = context.Event(), context.Queue(), context.Queue()
    start_at = context.Value("d", 0.0)
    max_requests = None if spans is None else math.ceil(spans / SPANS_PER_REQUEST / (clients * threads))
    # With a span count the whole run is measured; with a duration, warm-up is excluded.
    stop_offset = None if spans is not None else warmup + duration
    processes = [
        context.Process(
            target=_client_main,
            args=(c, media, service.port, threads, random.getrandbits(16), go, start_at, stop_offset, max_requests, ready, results),
            daemon=True,
        )
        for c in range(clients)
    ]
    profiler: subprocess.Popen[bytes] | None = None
    profile_path = ""
    try:
        with PeakRss(lambda: service.pid) as rss:
            for process in processes:
                process.start()
            for _ in processes:
                ready.get(timeout=120)
            log(f"ingest {encoding}: {clients} client processes x {threads} connections, sending")
            start_at.value = time.time()
            go.set()
            if spans is None:
                time.sleep(warmup)
            worker = service.worker_pid()
            cpu_before = (tree_cpu_seconds(service.pid), sum(tree_cpu_seconds(p.pid) for p in processes), time.time())
            if profile_dir is not None and spans is None:
                profile_path = str(profile_dir / f"ingest-{encoding}.raw")
                # --gil: the service is one Python process, so what holds the GIL is what limits it.
                profiler = subprocess.Popen(
                    ["py-spy", "record", "--pid", str(worker), "--duration", str(int(duration)), "--rate", str(PROFILE_RATE),
                     "--nonblocking", "--gil", "--format", "raw", "--output", profile_path],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
            if spans is None:
                time.sleep(duration)
                cpu_after = (tree_cpu_seconds(service.pid), sum(tree_cpu_seconds(p.pid) for p in processes), time.time())
            collected = [results.get(timeout=warmup + duration + 600) for _ in processes]
            if spans is not None:
                # The clients have exited by now: their CPU is not measured in this mode.
                cpu_after = (tree_cpu_seconds(service.pid), cpu_before[1] + math.nan, time.time())
            for process in processes:
                process.join(30)
            if profiler is not None:
                profiler.wait(60)
            code = service.stop()
        if code != 0:
            log(f"ingest {encoding}: service exited with {code}; see {service.log_path}")
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
        if service.process is not None and service.process.poll() is None:
            service.stop()
    last_answer = max(r.last_answer for r in collected)
    if spans is None:
        window = (start_at.value + warmup, start_at.value + warmup + duration)
    else:
        window = (start_at.value, last_answer + 0.001)
    counts = in_child(stored_counts, str(data_dir), window)
    if not keep:
        shutil.rmtree(data_dir, ignore_errors=True)
    latencies = [ms for r in collected for ms in r.latencies_ms]
    return IngestResult(
        encoding=encoding,
        clients=clients,
        threads=threads,
        window_seconds=window[1] - window[0],
        stored_in_window=counts["in_window"],
        stored_total=counts["total"],
        acknowledged_spans=sum(r.spans for r in collected),
        requests=sum(r.requests for r in collected),
        retry_answers=sum(r.retry_answers for r in collected),
        errors=sum(r.errors for r in collected),
        rejected_spans=sum(r.rejected_spans for r in collected),
        first_error=next((r.first_error for r in collected if r.first_error), ""),
        latency_p50_ms=percentile(latencies, 50),
        latency_p95_ms=percentile(latencies, 95),
        decode_spans_per_second=decode_rate,
        decode_map_spans_per_second=decode_map_rate,
        body_bytes=body_bytes,
        peak_rss=rss.peak,
        service_cores=(cpu_after[0] - cpu_before[0]) / (cpu_after[2] - cpu_before[2]),
        client_cores=(cpu_after[1] - cpu_before[1]) / (cpu_after[2] - cpu_before[2]),
        profile=profile_path,
        inserts_in_window=counts["inserts"],
    )
