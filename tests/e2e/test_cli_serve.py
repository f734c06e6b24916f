"""The README's command: `ai-usage serve` (gunicorn, embedded ClickHouse) receives SDK exports."""

from __future__ import annotations

import signal
import subprocess
import sys

import requests
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.e2e.test_otlp_protocol import PROTO, chat_request
from tests.support.otel import Recorder, export, http_exporter
from tests.support.service import REPO, ServiceProcess, read_table


def test_serve_receives_exports_and_stores_them(tmp_path):
    service = ServiceProcess(tmp_path / "data").start()
    try:
        recorder = Recorder({"service.name": "cli-test"})
        tracer = recorder.tracer()
        for i in range(3):
            tracer.start_span(f"chat {i}", attributes={"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": i + 1}).end()
        export(http_exporter(f"{service.url}/v1/traces", "protobuf", gzip=True), recorder.take())
        assert requests.get(f"{service.url}/health/live", timeout=5).json() == {"status": "ok"}
        # Older than the default 400-day retention: the TTL would drop it on insert, so it is refused visibly.
        stale = chat_request(start=1_600_000_000_000_000_000).SerializeToString()
        answer = requests.post(f"{service.url}/v1/traces", data=stale, headers=PROTO, timeout=10)
        partial = ExportTraceServiceResponse.FromString(answer.content).partial_success
        assert (answer.status_code, partial.rejected_spans) == (200, 1)
        assert "older than the retention period" in partial.error_message
    finally:
        assert service.stop(signal.SIGTERM) == 0, service.output()
    rows = read_table(tmp_path / "data", "SELECT sum(sign) AS n, sum(sign * input_tokens) AS tokens FROM operations")
    assert rows == [{"n": 3, "tokens": 6}]


def test_a_second_process_on_the_same_data_directory_gets_a_clear_error(tmp_path):
    service = ServiceProcess(tmp_path / "data").start()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "app.cli", "migrate"], cwd=REPO, env=service.env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 2
        assert "in use by another process" in result.stderr
    finally:
        service.stop()


def test_migrate_twice_is_a_no_op(tmp_path):
    env = {**ServiceProcess(tmp_path / "data").env}
    outputs = [
        subprocess.run([sys.executable, "-m", "app.cli", "migrate"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
        for _ in range(2)
    ]
    assert [o.returncode for o in outputs] == [0, 0], outputs
    assert "0001_operations" in outputs[0].stdout
    assert "nothing to apply" in outputs[1].stdout


def test_embedded_mode_refuses_several_workers(tmp_path):
    env = {**ServiceProcess(tmp_path / "data").env}
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--workers", "2"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "one process" in result.stderr


def test_serve_refuses_an_open_network_bind(tmp_path):
    env = {**ServiceProcess(tmp_path / "data").env}
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--host", "0.0.0.0"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "AI_USAGE_ALLOW_OPEN" in result.stderr


def test_gunicorn_runs_the_app_with_the_shipped_config(tmp_path):
    """The documented way to run gunicorn directly works and reads the same settings."""
    service = ServiceProcess(tmp_path / "data")
    env = {**service.env, "AI_USAGE_PORT": str(service.port)}
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:app.gunicorn_config", "app:create_app()"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    try:
        import time

        for _ in range(150):
            try:
                if requests.get(f"{service.url}/health/ready", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        assert requests.get(f"{service.url}/health/ready", timeout=5).json()["status"] == "ready"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
