"""`ai-usage serve` (gunicorn): JSON log lines on stderr, request ids, no key ever logged, and
multiprocess metrics that sum every worker process the service ran.

Several workers need a ClickHouse server (chdb allows one process), which these
tests do not have; a worker killed and replaced by gunicorn gives the same
thing to check: two worker processes' files summed by one scrape.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import requests

from tests.support.metrics import assert_spans_balance, scrape
from tests.support.otel import Recorder, export, http_exporter
from tests.support.service import ServiceProcess

API = "/umbraco/ai/management/api/v1"
SUMMARY = f"{API}/analytics/usage-summary"
PERIOD = "from=2024-01-01&to=2024-01-02"
API_KEY = "api-key-s3cr3t-A"
INGEST_KEY = "ingest-key-s3cr3t-B"


def chat_spans(count: int, offset: int = 0):
    recorder = Recorder({"service.name": "serve-observability"})
    tracer = recorder.tracer()
    for i in range(count):
        tracer.start_span(f"chat {offset + i}", attributes={"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 1}).end()
    return recorder.take()


def test_serve_logs_json_lines_with_request_ids_and_never_a_key(tmp_path):
    service = ServiceProcess(tmp_path / "data", env={"AI_USAGE_API_KEYS": API_KEY, "AI_USAGE_INGEST_KEYS": INGEST_KEY}).start()
    try:
        before = scrape(service.url)  # open: no key
        export(http_exporter(f"{service.url}/v1/traces", "protobuf", headers={"Authorization": f"Bearer {INGEST_KEY}"}), chat_spans(3))
        answered = requests.get(
            f"{service.url}{SUMMARY}?{PERIOD}", headers={"Authorization": f"Bearer {API_KEY}", "X-Request-Id": "cli-req-1"}, timeout=10
        )
        assert answered.status_code == 200 and answered.headers["X-Request-Id"] == "cli-req-1"
        wrong = requests.get(f"{service.url}{SUMMARY}?{PERIOD}", headers={"Authorization": "Bearer wrong-s3cr3t-C"}, timeout=10)
        assert wrong.status_code == 401
        # A secret in the query string is not logged either (only the path is).
        leaked = requests.get(f"{service.url}{SUMMARY}?{PERIOD}&api_key=query-s3cr3t-D", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10)
        overlong = requests.get(f"{service.url}/health/live", headers={"X-Request-Id": "y" * 200}, timeout=10)
        injected = requests.get(f"{service.url}/health/live", headers={"X-Request-Id": 'id"} {"level":"ERROR'}, timeout=10)
        after = scrape(service.url)
    finally:
        assert service.stop(signal.SIGTERM) == 0, service.output()

    delta = after - before
    assert delta("ai_usage_spans_received_total", transport="http") == 3
    assert delta("ai_usage_rows_written_total") == 3
    assert leaked.status_code == 200  # unknown parameters are ignored
    assert delta("ai_usage_http_responses_total", route=SUMMARY, method="GET", status="200") == 2
    assert delta("ai_usage_http_responses_total", route=SUMMARY, method="GET", status="401") == 1
    assert delta("ai_usage_http_request_duration_seconds_count", route=SUMMARY, method="GET") == 3
    assert_spans_balance(after, "http")

    output = service.output()
    assert "s3cr3t" not in output, "a key reached the log"
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]  # every line is one JSON object
    assert all({"timestamp", "level", "logger", "message"} <= line.keys() for line in lines)
    access = [line for line in lines if line["logger"] == "ai_usage.access"]
    (summary,) = [line for line in access if line.get("request_id") == "cli-req-1"]
    assert (summary["method"], summary["path"], summary["route"], summary["status"]) == ("GET", SUMMARY, SUMMARY, 200)
    (export_line,) = [line for line in access if line["path"] == "/v1/traces"]
    assert export_line["status"] == 200 and re.fullmatch(r"[0-9a-f]{32}", export_line["request_id"])
    for response in (leaked, overlong, injected):
        returned = response.headers["X-Request-Id"]
        assert re.fullmatch(r"[0-9a-f]{32}", returned)
        assert [line["status"] for line in access if line["request_id"] == returned] == [response.status_code]
    assert len({line["request_id"] for line in access}) == len(access), "one id per request"
    assert any(line["logger"] == "gunicorn.error" and "Booting worker" in line["message"] for line in lines)

    # The metrics directory this run created is gone with it.
    (created,) = [re.search(r"directory (\S+) \(created", line["message"]).group(1) for line in lines if "(created for this run)" in line["message"]]
    assert not Path(created).exists()


def test_metrics_sum_every_worker_process_and_a_new_run_starts_from_zero(tmp_path):
    metrics_dir = tmp_path / "prometheus"
    service = ServiceProcess(tmp_path / "data", env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}).start()
    exporter = http_exporter(f"{service.url}/v1/traces", "protobuf")
    try:
        export(exporter, chat_spans(3))
        first_worker = _worker_of(service.process.pid)
        assert scrape(service.url).value("ai_usage_spans_received_total", transport="http") == 3

        os.kill(first_worker, signal.SIGKILL)  # gunicorn starts a new worker: a second process writing metrics
        second_worker = _new_worker(service, first_worker)
        export(exporter, chat_spans(2, offset=3))
        current = scrape(service.url)
    finally:
        assert service.stop(signal.SIGTERM) == 0, service.output()

    assert current.value("ai_usage_spans_received_total", transport="http") == 5
    assert current.value("ai_usage_rows_written_total") == 5
    assert current.value("ai_usage_export_responses_total", transport="http", status="200") == 2
    assert current.value("ai_usage_insert_batches_total", outcome="ok") == 2
    assert current.value("ai_usage_http_request_duration_seconds_count", route="/v1/traces", method="POST") == 2
    files = {path.name for path in metrics_dir.glob("*.db")}
    assert {f"counter_{first_worker}.db", f"counter_{second_worker}.db"} <= files, files

    # A directory given by the operator is kept, and emptied when the service starts again.
    again = ServiceProcess(tmp_path / "data", env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}).start()
    try:
        fresh = scrape(again.url)
    finally:
        assert again.stop(signal.SIGTERM) == 0, again.output()
    assert fresh.value("ai_usage_spans_received_total", transport="http") == 0
    assert fresh.value("ai_usage_rows_written_total") == 0


def _worker_of(master: int, timeout: float = 30) -> int:
    """The pid of the gunicorn master's (one) worker process."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = [pid for pid in _children(master)]
        if len(children) == 1:
            return children[0]
        time.sleep(0.1)
    raise AssertionError(f"no single worker under {master}")


def _new_worker(service: ServiceProcess, old: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = [pid for pid in _children(service.process.pid) if pid != old]
        if children:
            try:
                if requests.get(f"{service.url}/health/ready", timeout=2).status_code == 200:
                    return children[0]
            except requests.RequestException:
                pass
        time.sleep(0.2)
    raise AssertionError(f"no new worker became ready:\n{service.output()}")


def _children(parent: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent and fields[0] != "Z":  # fields: state, ppid, ...
            pids.append(int(stat.parent.name))
    return pids
