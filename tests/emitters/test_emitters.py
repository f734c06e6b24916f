"""Real instrumentation libraries, end to end: client → instrumentation → OTLP exporter → service → rows.

For each emitter, tests/emitters/drive.py (a subprocess: instrumentors patch globally) drives the real
`openai` / `anthropic` client against provider_stub with the real instrumentation and the SDK's real OTLP
exporter, into a service of its own (one per emitter, shared by that emitter's tests). Each call must become
exactly one operation whose columns match what the stub's token rule and the emitter's known behaviour
(scenarios.EMITTERS) predict.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from tests.emitters.harness import Run, analytics, drive, rows_by_call, totals
from tests.emitters.scenarios import EMITTERS, expected, expected_totals
from tests.support.service import free_port

# How each emitter's spans travel: every OTLP transport the SDK has is used by at least one emitter.
PROTOCOLS = {
    "openai-v2": "http/protobuf",
    "openai-v2-latest": "http/json",
    "openllmetry-openai": "http/protobuf",
    "openinference-openai": "grpc",
    "openllmetry-anthropic": "http/protobuf",
    "anthropic-native": "grpc",
}

@pytest.fixture(scope="module")
def runs(start_service, provider_stub, tmp_path_factory):
    """runs(name): one driver run of that emitter, exported into a fresh service; made once per module."""
    done: dict[str, Run] = {}

    def get(name: str) -> Run:
        if name not in done:
            emitter = EMITTERS[name]
            protocol = PROTOCOLS[name]
            if protocol == "grpc":
                service = start_service(grpc_port=free_port())
                endpoint = f"127.0.0.1:{service.runtime.grpc_port}"
            else:
                service = start_service()
                endpoint = service.url
            manifest = drive(name, provider_stub, [(protocol, endpoint)], tmp_path_factory.mktemp(name), emitter.env)
            rows = rows_by_call(service, manifest)
            done[name] = Run(emitter, service, manifest, rows)
        return done[name]

    return get


def _emitter_params():
    return [pytest.param(name, id=name) for name in EMITTERS]


def _call_params():
    return [pytest.param(e.name, call.name, id=f"{e.name}-{call.name}") for e in EMITTERS.values() for call in e.calls]


def _only_row(run: Run, call_name: str) -> dict:
    rows = run.rows[call_name]
    spans = run.manifest["calls"][call_name]
    assert len(rows) == 1, f"{call_name}: expected one operation, got {len(rows)} from spans {spans}"
    return rows[0]


@pytest.mark.parametrize("emitter,call_name", _call_params())
def test_each_call_is_one_operation_with_the_emitters_numbers(runs, emitter, call_name):
    run = runs(emitter)
    call = next(c for c in run.emitter.calls if c.name == call_name)
    row = _only_row(run, call_name)
    assert row["scope_name"] in run.emitter.scopes
    assert row["service_name"] == f"emitter-{run.emitter.name}"
    want = dataclasses.asdict(expected(run.emitter, call))
    got = {name: row[name] for name in want}
    assert got == want


@pytest.mark.parametrize("emitter", _emitter_params())
def test_totals_count_each_call_once(runs, emitter):
    run = runs(emitter)
    assert totals(run.service) == expected_totals([run.emitter])


# --- the analytics API over the same rows -------------------------------------------------------------------

def expected_breakdown(groups: list[tuple[str, int]]) -> list[dict]:
    """Breakdown items from (key, total tokens) per operation: by count desc, then key asc."""
    counts = Counter(key for key, _ in groups)
    tokens = Counter()
    for key, total in groups:
        tokens[key] += total
    return [
        {"dimension": key, "dimensionName": None, "requestCount": counts[key], "totalTokens": tokens[key],
         "percentage": pytest.approx(100 * counts[key] / len(groups))}
        for key in sorted(counts, key=lambda k: (-counts[k], k))
    ]


@pytest.mark.parametrize("emitter", _emitter_params())
def test_usage_summary(runs, emitter):
    run = runs(emitter)
    want = expected_totals([run.emitter])
    summary = analytics(run, "usage-summary")
    assert {key: summary[key] for key in ("totalRequests", "inputTokens", "outputTokens", "totalTokens",
                                          "successCount", "failureCount", "successRate")} == {
        "totalRequests": want["requests"],
        "inputTokens": want["input_tokens"],
        "outputTokens": want["output_tokens"],
        "totalTokens": want["total_tokens"],
        "successCount": want["successes"],
        "failureCount": want["failures"],
        "successRate": pytest.approx(want["successes"] / want["requests"]),
    }


@pytest.mark.parametrize("emitter", _emitter_params())
def test_usage_by_model_and_by_provider(runs, emitter):
    run = runs(emitter)
    wanted = [expected(run.emitter, call) for call in run.emitter.calls]
    # The model of an operation is its requested model (every call here has one).
    assert analytics(run, "usage-by-model") == expected_breakdown([(w.request_model, w.total_tokens) for w in wanted])
    assert analytics(run, "usage-by-provider") == expected_breakdown([(w.provider, w.total_tokens) for w in wanted])
