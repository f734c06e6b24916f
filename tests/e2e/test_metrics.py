"""`/metrics` of a running service: real SDK exports, real analytics calls, exact counter deltas."""

from __future__ import annotations

import threading
import time

import grpc
import pytest
import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from tests.e2e.test_ingest_reliability import _encode, chat_spans
from tests.e2e.test_otlp_protocol import PROTO
from tests.support.grpc_client import grpc_exporter, trace_stub
from tests.support.metrics import assert_spans_balance, scrape
from tests.support.otel import ENCODINGS, Recorder, export, http_exporter
from tests.support.service import free_port

API = "/umbraco/ai/management/api/v1"
START = (time.time_ns() // 3_600_000_000_000 - 24) * 3_600_000_000_000
CHAT = {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 5}


def spans(chats: int, plain: int = 0, bad: int = 0, offset: int = 0):
    """`chats` model calls, `plain` spans that are no model call, `bad` model calls ending before they start;
    each a root span of its own trace."""
    recorder = Recorder({"service.name": "metrics-test"})
    tracer = recorder.tracer()
    for i in range(chats):
        start = START + (offset + i) * 1000
        tracer.start_span(f"chat {i}", start_time=start, attributes=CHAT).end(end_time=start + 500)
    for i in range(plain):
        tracer.start_span(f"GET /page/{i}", start_time=START).end(end_time=START + 10)
    for i in range(bad):
        tracer.start_span(f"chat bad {i}", start_time=START + 1000, attributes=CHAT).end(end_time=START)
    return recorder.take()


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_http_exports_are_counted_exactly(service, encoding):
    exporter = http_exporter(f"{service.url}/v1/traces", encoding)
    before = scrape(service.url)
    export(exporter, spans(6, plain=3, bad=1))  # a partial success
    second = spans(4, offset=100)
    export(exporter, second)
    export(exporter, second)  # sent again: acknowledged, not written twice
    after = scrape(service.url)
    delta = after - before

    assert delta("ai_usage_spans_received_total", transport="http") == 10 + 4 + 4
    assert delta("ai_usage_spans_accepted_total", transport="http") == 9 + 4 + 4
    assert delta("ai_usage_spans_rejected_total", transport="http", reason="invalid") == 1
    assert delta("ai_usage_operations_accepted_total", transport="http") == 6 + 4 + 4
    assert delta("ai_usage_rows_written_total") == 6 + 4
    assert delta("ai_usage_export_responses_total", transport="http", status="200") == 3
    assert delta("ai_usage_export_duration_seconds_count", transport="http", outcome="partial_success") == 1
    assert delta("ai_usage_export_duration_seconds_count", transport="http", outcome="success") == 2
    assert delta("ai_usage_export_duration_seconds_sum", transport="http", outcome="success") > 0
    # One group commit per export (each waited for its own); sizes in model-call spans.
    assert delta("ai_usage_insert_batches_total", outcome="ok") == 3
    assert delta("ai_usage_insert_batch_spans_count") == 3
    assert delta("ai_usage_insert_batch_spans_sum") == 6 + 4 + 4
    assert delta("ai_usage_insert_duration_seconds_count") == 3
    assert delta("ai_usage_http_request_duration_seconds_count", route="/v1/traces", method="POST") == 3
    assert delta("ai_usage_http_responses_total", route="/v1/traces", method="POST", status="200") == 3
    assert delta("ai_usage_spans_received_total", transport="grpc") == 0
    assert_spans_balance(after, "http")
    assert service.query("SELECT sum(sign) AS n FROM operations")[0]["n"] == 10


def test_requests_that_never_decode_count_as_responses_not_spans(service):
    before = scrape(service.url)
    assert requests.post(f"{service.url}/v1/traces", data=b"\x0a\xff\xff garbage", headers=PROTO, timeout=10).status_code == 400
    assert requests.get(f"{service.url}/v1/traces", timeout=10).status_code == 405
    delta = scrape(service.url) - before
    assert delta("ai_usage_export_responses_total", transport="http", status="400") == 1
    assert delta("ai_usage_export_responses_total", transport="http", status="405") == 1
    assert delta("ai_usage_export_duration_seconds_count", transport="http", outcome="permanent") == 2
    assert delta("ai_usage_spans_received_total", transport="http") == 0
    assert delta("ai_usage_insert_batches_total", outcome="ok") == 0


def test_grpc_exports_are_counted_by_status_name(make_service):
    service = make_service(grpc_port=free_port())
    port = service.runtime.grpc_port
    before = scrape(service.url)
    export(grpc_exporter(port), spans(5))
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    garbage = channel.unary_unary(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        request_serializer=lambda body: body,
        response_deserializer=lambda body: body,
    )
    with channel, pytest.raises(grpc.RpcError) as raised:
        garbage(b"\x0a\xff\xff garbage", timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    after = scrape(service.url)
    delta = after - before

    assert delta("ai_usage_spans_received_total", transport="grpc") == 5
    assert delta("ai_usage_spans_accepted_total", transport="grpc") == 5
    assert delta("ai_usage_operations_accepted_total", transport="grpc") == 5
    assert delta("ai_usage_rows_written_total") == 5
    assert delta("ai_usage_export_responses_total", transport="grpc", status="OK") == 1
    assert delta("ai_usage_export_responses_total", transport="grpc", status="INVALID_ARGUMENT") == 1
    assert delta("ai_usage_export_duration_seconds_count", transport="grpc", outcome="success") == 1
    assert delta("ai_usage_export_duration_seconds_count", transport="grpc", outcome="permanent") == 1
    assert delta("ai_usage_spans_received_total", transport="http") == 0
    assert_spans_balance(after, "grpc")


def test_over_the_in_flight_limit_503s_and_unavailables_are_counted(make_service):
    service = make_service(max_in_flight_spans=40, batch_linger_ms=800, grpc_port=free_port())
    before = scrape(service.url)
    results = []
    first = threading.Thread(target=lambda: results.append(_post(service, _encode(chat_spans(30)))))
    first.start()
    time.sleep(0.3)  # the first export waits in the queue
    assert _post(service, _encode(chat_spans(30))).status_code == 503
    channel, stub = trace_stub(service.runtime.grpc_port)
    with channel, pytest.raises(grpc.RpcError) as raised:
        stub.Export(ExportTraceServiceRequest.FromString(_encode(chat_spans(20))), timeout=10)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    first.join(10)
    assert results[0].status_code == 200
    after = scrape(service.url)
    delta = after - before

    assert delta("ai_usage_export_responses_total", transport="http", status="503") == 1
    assert delta("ai_usage_export_responses_total", transport="http", status="200") == 1
    assert delta("ai_usage_export_responses_total", transport="grpc", status="UNAVAILABLE") == 1
    assert delta("ai_usage_spans_rejected_total", transport="http", reason="retryable") == 30
    assert delta("ai_usage_spans_rejected_total", transport="grpc", reason="retryable") == 20
    assert delta("ai_usage_spans_received_total", transport="http") == 60
    assert delta("ai_usage_spans_accepted_total", transport="http") == 30
    assert delta("ai_usage_export_duration_seconds_count", transport="http", outcome="retryable") == 1
    assert delta("ai_usage_export_duration_seconds_count", transport="grpc", outcome="retryable") == 1
    assert delta("ai_usage_rows_written_total") == 30
    assert_spans_balance(after, "http")
    assert_spans_balance(after, "grpc")


def test_storage_down_counts_503s_failed_commits_and_clickhouse_errors(service):
    before = scrape(service.url)
    client = service.database.client()
    client.command("RENAME TABLE operations TO operations_offline")
    try:
        assert _post(service, _encode(chat_spans(3))).status_code == 503  # its commit fails
        assert _post(service, _encode(chat_spans(4))).status_code == 503  # refused at once while down
        audit = requests.get(f"{service.url}{API}/audit-logs", timeout=10)
        assert audit.status_code == 500
        down = scrape(service.url)
    finally:
        client.command("RENAME TABLE operations_offline TO operations")
    _wait_ready(service)
    export(http_exporter(f"{service.url}/v1/traces", "protobuf"), spans(2))
    after = scrape(service.url)

    delta = down - before
    assert delta("ai_usage_export_responses_total", transport="http", status="503") == 2
    assert delta("ai_usage_spans_rejected_total", transport="http", reason="retryable") == 7
    assert delta("ai_usage_insert_batches_total", outcome="failed") == 1
    assert delta("ai_usage_insert_batches_total", outcome="ok") == 0
    assert delta("ai_usage_clickhouse_errors_total", operation="lookup", kind="error") == 1
    assert delta("ai_usage_clickhouse_errors_total", operation="query", kind="error") == 1
    assert delta("ai_usage_http_responses_total", route=f"{API}/audit-logs", method="GET", status="500") == 1
    assert delta("ai_usage_rows_written_total") == 0
    # The writer probes storage until it answers; every failed probe counts.
    assert (after - before)("ai_usage_clickhouse_errors_total", operation="probe", kind="unavailable") >= 1
    assert (after - down)("ai_usage_insert_batches_total", outcome="ok") == 1
    assert (after - down)("ai_usage_rows_written_total") == 2
    assert_spans_balance(after, "http")


def test_query_latency_is_counted_per_route_never_per_raw_path(service):
    period = "from=2024-01-01&to=2024-01-02"
    before = scrape(service.url)
    for path in ("usage-summary", "usage-summary", "summary", "usage-by-model"):
        assert requests.get(f"{service.url}{API}/analytics/{path}?{period}", timeout=10).status_code == 200
    assert requests.get(f"{service.url}{API}/analytics/usage-summary?from=yesterday", timeout=10).status_code == 400
    operation_id = "ab" * 24
    assert requests.get(f"{service.url}{API}/audit-logs/{operation_id}", timeout=10).status_code == 404
    assert requests.get(f"{service.url}/no/such/page-4f1d", timeout=10).status_code == 404
    after = scrape(service.url)
    delta = after - before

    def count(route: str) -> float:
        return delta("ai_usage_http_request_duration_seconds_count", route=f"{API}{route}", method="GET")

    assert count("/analytics/usage-summary") == 3  # two answered, one refused for its parameter
    assert count("/analytics/summary") == 1  # the alias is a route of its own
    assert count("/analytics/usage-by-model") == 1
    assert count("/analytics/usage-by-user") == 0
    assert count("/audit-logs/<id>") == 1
    assert delta("ai_usage_http_responses_total", route=f"{API}/analytics/usage-summary", method="GET", status="400") == 1
    assert delta("ai_usage_http_responses_total", route=f"{API}/analytics/usage-summary", method="GET", status="200") == 2
    assert delta("ai_usage_http_request_duration_seconds_count", route="(unmatched)", method="GET") == 1
    # A request's histogram lands in one bucket: the +Inf bucket counts it, so does the sum.
    assert delta("ai_usage_http_request_duration_seconds_bucket", route=f"{API}/analytics/usage-by-model", method="GET", le="+Inf") == 1
    assert operation_id not in after.text and "page-4f1d" not in after.text


def test_metrics_are_open_when_keys_guard_the_api_and_ingest(make_service):
    service = make_service(api_keys=("api-secret-1",), ingest_keys=("ingest-secret-1",))
    before = scrape(service.url)  # no Authorization header
    assert requests.get(f"{service.url}{API}/analytics/usage-summary?from=2024-01-01&to=2024-01-02", timeout=10).status_code == 401
    refused = requests.post(f"{service.url}/v1/traces", data=_encode(chat_spans(2)), headers=PROTO, timeout=10)
    assert refused.status_code == 401
    after = scrape(service.url)
    delta = after - before
    assert delta("ai_usage_http_responses_total", route=f"{API}/analytics/usage-summary", method="GET", status="401") == 1
    assert delta("ai_usage_export_responses_total", transport="http", status="401") == 1
    assert delta("ai_usage_spans_received_total", transport="http") == 0  # refused before decoding
    assert "secret" not in after.text
    # Prometheus asks for OpenMetrics first; the same counters come back in that format.
    open_metrics = requests.get(f"{service.url}/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}, timeout=10)
    assert open_metrics.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    families = {family.name: family for family in text_string_to_metric_families(open_metrics.text)}
    assert open_metrics.text.rstrip().endswith("# EOF")
    assert {s.labels["status"]: s.value for s in families["ai_usage_export_responses"].samples if s.name.endswith("_total")} == {"401": 1}


def _post(service, body: bytes) -> requests.Response:
    return requests.post(f"{service.url}/v1/traces", data=body, headers=PROTO, timeout=15)


def _wait_ready(service, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if requests.get(f"{service.url}/health/ready", timeout=5).status_code == 200:
            return
        time.sleep(0.2)
    raise AssertionError("service did not become ready again")
