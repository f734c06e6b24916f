"""Nothing acknowledged is lost, nothing is counted twice: retries, storage faults, overload, shutdown."""

from __future__ import annotations

import signal
import threading
import time

import grpc
import pytest
import requests
from google.rpc import error_details_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.e2e.test_otlp_protocol import PROTO, chat_request
from tests.support.grpc_client import trace_stub
from tests.support.otel import Recorder, export, http_exporter
from tests.support.service import ServiceProcess, free_port, read_table

START = (time.time_ns() // 3_600_000_000_000 - 24) * 3_600_000_000_000  # yesterday, within retention


def chat_spans(count: int, tokens: int = 10):
    recorder = Recorder({"service.name": "reliability"})
    tracer = recorder.tracer()
    for i in range(count):
        tracer.start_span(f"chat {i}", start_time=START + i * 1000, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": tokens,
        }).end(end_time=START + i * 1000 + 500)
    return recorder.take()


def totals(service) -> tuple[int, int]:
    """(operations, input tokens) as every analytics query counts them: raw rows and the rollup."""
    raw = service.query("SELECT sum(sign) AS n, sum(sign * input_tokens) AS t FROM operations")[0]
    rollup = service.query("SELECT sum(requests) AS n, sum(input_tokens) AS t FROM usage_hourly WHERE dimension = 'all'")[0]
    assert (raw["n"], raw["t"]) == (rollup["n"], rollup["t"]), "rollup and raw rows disagree"
    return raw["n"], raw["t"]


def post(service, body: bytes) -> requests.Response:
    return requests.post(f"{service.url}/v1/traces", data=body, headers=PROTO, timeout=15)


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_the_same_export_twice_counts_once(service, encoding):
    spans = chat_spans(20)
    exporter = http_exporter(f"{service.url}/v1/traces", encoding)
    export(exporter, spans)
    export(exporter, spans)
    export(exporter, spans[:5] + spans[:5])  # duplicates inside one request, too
    assert totals(service) == (20, 200)


def test_a_batch_the_client_retried_after_a_timeout_counts_once(make_service):
    # The client gives up before the answer (its timeout is shorter than the
    # writer's linger), the server stores the batch anyway, and the client
    # sends it again: the retry must not be counted a second time.
    service = make_service(batch_linger_ms=600)
    spans = chat_spans(30)
    with pytest.raises(requests.Timeout):
        requests.post(f"{service.url}/v1/traces", data=_encode(spans), headers=PROTO, timeout=0.1)
    export(http_exporter(f"{service.url}/v1/traces", "protobuf"), spans)
    assert totals(service) == (30, 300)
    time.sleep(0.7)  # nothing else arrives later either
    assert totals(service) == (30, 300)


def test_storage_unavailable_gives_503_then_the_exporters_retry_delivers_exactly_once(service):
    client = service.database.client()
    client.command("RENAME TABLE operations TO operations_offline")
    try:
        refused = post(service, chat_request().SerializeToString())
        assert refused.status_code == 503
        assert 0 < int(refused.headers["Retry-After"]) <= 5
        assert "storage" in refused.text
        again = post(service, chat_request().SerializeToString())
        assert again.status_code == 503, "still down: refused at once, not queued"
        assert requests.get(f"{service.url}/health/ready", timeout=5).status_code == 503

        spans = chat_spans(25)
        outcome = {}
        exporter = http_exporter(f"{service.url}/v1/traces", "protobuf")
        worker = threading.Thread(target=lambda: outcome.setdefault("result", exporter.export(spans)))
        worker.start()
        time.sleep(1.5)  # the exporter has been refused at least once by now
    finally:
        client.command("RENAME TABLE operations_offline TO operations")
    worker.join(30)
    assert outcome["result"].name == "SUCCESS"
    assert totals(service) == (25, 250)
    assert requests.get(f"{service.url}/health/ready", timeout=5).status_code == 200


def test_over_the_in_flight_limit_exports_get_503_with_retry_after(make_service):
    service = make_service(max_in_flight_spans=40, batch_linger_ms=800, grpc_port=free_port())
    results = []
    first = threading.Thread(target=lambda: results.append(post(service, _encode(chat_spans(30)))))
    first.start()
    time.sleep(0.3)  # the first export waits in the queue
    overloaded = post(service, _encode(chat_spans(30)))
    assert overloaded.status_code == 503 and overloaded.headers["Retry-After"] == "2"
    assert "in-flight limit" in overloaded.text

    channel, stub = trace_stub(service.runtime.grpc_port)
    twenty = ExportTraceServiceRequest.FromString(_encode(chat_spans(20)))
    with channel, pytest.raises(grpc.RpcError) as raised:
        stub.Export(twenty, timeout=10)
    error = raised.value
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    retry = error_details_pb2.RetryInfo.FromString(dict(error.trailing_metadata())["google.rpc.retryinfo-bin"])
    assert retry.retry_delay.seconds == 2
    first.join(10)
    assert results[0].status_code == 200
    assert totals(service) == (30, 300)


def test_sigterm_finishes_accepted_exports_before_exiting(tmp_path):
    data = tmp_path / "data"
    service = ServiceProcess(data, env={"AI_USAGE_BATCH_LINGER_MS": "1500"}).start()
    answers = []
    bodies = [_encode(chat_spans(10), trace=f"{i + 1:032x}") for i in range(4)]
    threads = [threading.Thread(target=lambda b=b: answers.append(_post_status(service.url, b))) for b in bodies]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # all four are accepted and waiting for the lingering writer
    assert service.stop(signal.SIGTERM) == 0, service.output()
    for thread in threads:
        thread.join(10)
    acknowledged = sum(10 for status in answers if status == 200)
    assert acknowledged == 40, answers
    rows = read_table(data, "SELECT sum(sign) AS n FROM operations")
    assert rows[0]["n"] == acknowledged


def _post_status(url: str, body: bytes) -> int | str:
    try:
        return requests.post(f"{url}/v1/traces", data=body, headers=PROTO, timeout=20).status_code
    except requests.RequestException as error:
        return type(error).__name__


def _encode(spans, trace: str | None = None) -> bytes:
    """The protobuf body the SDK would send for `spans`; optionally moved to another trace."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    request = encode_spans(spans)
    if trace:
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    span.trace_id = bytes.fromhex(trace)
    return request.SerializeToString()
