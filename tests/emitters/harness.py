"""Helpers of the emitter tests: run the driver subprocess, read operations back, ask the analytics API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
import requests

from tests.emitters.provider_stub import ProviderStub
from tests.emitters.scenarios import Emitter
from tests.support.service import REPO, InProcessService

# Variables that switch emitters' behaviour: the driver's process gets only the scenario's own.
_EMITTER_ENV_PREFIXES = ("OTEL_", "TRACELOOP_", "OPENINFERENCE_", "ANTHROPIC_OPEN_TELEMETRY")

# The columns the tests compare, read as each operation's current state (rows are states with sign ±1).
ROW_COLUMNS = (
    "capability", "provider", "provider_raw", "request_model", "response_model", "input_tokens",
    "output_tokens", "total_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
    "streaming", "succeeded", "error_type", "scope_name", "service_name",
)

ANALYTICS = "/umbraco/ai/management/api/v1/analytics"


@dataclass
class Run:
    """One driver run as one service stored it."""

    emitter: Emitter
    service: InProcessService
    manifest: dict
    rows: dict  # call name -> live operation rows stored for the spans of that call


def drive(emitter: str, stub: ProviderStub, exports: list[tuple[str, str]], workdir, env: dict) -> dict:
    """Run tests/emitters/drive.py for `emitter` in a subprocess; its manifest (spans of each call)."""
    manifest_path = workdir / f"manifest-{emitter}.json"
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(_EMITTER_ENV_PREFIXES)}
    child_env.update(env)
    # Clients and exporters talk to loopback only; a proxy from the environment must not get in the way.
    child_env["NO_PROXY"] = child_env["no_proxy"] = "127.0.0.1,localhost"
    command = [sys.executable, "-m", "tests.emitters.drive", emitter, "--stub", stub.base_url,
               "--manifest", str(manifest_path)]
    for protocol, endpoint in exports:
        command += ["--export", f"{protocol}={endpoint}"]
    done = subprocess.run(command, cwd=REPO, env=child_env, capture_output=True, text=True, timeout=180)
    if done.returncode != 0:
        pytest.fail(f"drive.py {emitter} exited {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}")
    return json.loads(manifest_path.read_text())


def current_rows(service: InProcessService, spans: list[dict]) -> list[dict]:
    """The live operations (current state, sum(sign) > 0) stored for these spans."""
    if not spans:
        return []
    keys = [s["trace_id"] + s["span_id"] for s in spans]
    selected = ", ".join(f"argMaxIf({c}, version, sign = 1) AS {c}" for c in ROW_COLUMNS)
    return service.query(
        f"SELECT trace_id, span_id, sum(sign) AS live, {selected} FROM operations "
        "WHERE concat(trace_id, span_id) IN {keys:Array(String)} "
        "GROUP BY trace_id, span_id HAVING live > 0 ORDER BY trace_id, span_id",
        {"keys": keys},
    )


def rows_by_call(service: InProcessService, manifest: dict) -> dict:
    """Call name -> the live operations the service stored for that call's spans."""
    return {call: current_rows(service, spans) for call, spans in manifest["calls"].items()}


def totals(service: InProcessService) -> dict:
    """Counts and sums over the whole table, the way every query must read it (sum(sign))."""
    return service.query(
        "SELECT sum(sign) AS requests, sum(sign * input_tokens) AS input_tokens, "
        "sum(sign * output_tokens) AS output_tokens, sum(sign * total_tokens) AS total_tokens, "
        "sum(sign * cache_read_tokens) AS cache_read_tokens, sum(sign * cache_write_tokens) AS cache_write_tokens, "
        "sumIf(sign, succeeded) AS successes, sumIf(sign, NOT succeeded) AS failures FROM operations"
    )[0]


def analytics(run: Run, route: str):
    # The spans were made moments ago: a two-day window around now holds all of them.
    now = datetime.now(timezone.utc)
    period = {"from": (now - timedelta(days=1)).isoformat(), "to": (now + timedelta(days=1)).isoformat()}
    response = requests.get(f"{run.service.url}{ANALYTICS}/{route}", params=period, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()
