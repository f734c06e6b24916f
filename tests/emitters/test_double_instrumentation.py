"""Two instrumentations of one client: OpenLLMetry's Anthropic instrumentor and the anthropic SDK's own spans.

With both on, every call produces two model-call spans that are both roots, in two separate traces, from two
scopes. Nothing in the spans ties them together (no parent, no shared trace), so the service cannot tell that
they are one call: without configuration each call is counted twice, and that is the expected, documented
behaviour (README, "Two instrumentations of one client"). AI_USAGE_IGNORED_SCOPES (`ignored_scopes`) drops
one of them. One driver run exports the very same spans to three services: no setting, ignoring the SDK's
scope, and ignoring OpenLLMetry's scope (the README's recommendation: the SDK's numbers are the right ones).

Two OpenAI instrumentations behave differently: their spans nest in one trace, and the service counts the
leaf by itself (the contract's rule for nested model calls), so no setting is needed there.
"""

from __future__ import annotations

import dataclasses

import pytest

from tests.emitters.harness import Run, analytics, drive, rows_by_call, totals
from tests.emitters.scenarios import (
    ANTHROPIC_CALLS,
    DOUBLE_ANTHROPIC,
    DOUBLE_ANTHROPIC_ENV,
    DOUBLE_OPENAI,
    DOUBLE_OPENAI_ENV,
    EMITTERS,
    OPENAI_CALLS,
    Emitter,
    expected,
    expected_totals,
)

OPENLLMETRY = EMITTERS["openllmetry-anthropic"]
SDK = EMITTERS["anthropic-native"]
OPENLLMETRY_SCOPE, = OPENLLMETRY.scopes
SDK_SCOPE, = SDK.scopes
CALLS = [pytest.param(call, id=call.name) for call in ANTHROPIC_CALLS]


@pytest.fixture(scope="module")
def double(start_service, provider_stub, tmp_path_factory) -> dict[str, Run]:
    services = {
        "unconfigured": start_service(),
        "sdk-ignored": start_service(ignored_scopes=(SDK_SCOPE,)),
        "openllmetry-ignored": start_service(ignored_scopes=(OPENLLMETRY_SCOPE,)),
    }
    manifest = drive(DOUBLE_ANTHROPIC, provider_stub, [("http/protobuf", s.url) for s in services.values()],
                     tmp_path_factory.mktemp("double"), DOUBLE_ANTHROPIC_ENV)
    return {
        name: Run(SDK, service, manifest,
                  rows_by_call(service, manifest))
        for name, service in services.items()
    }


def _by_scope(rows: list[dict]) -> dict[str, dict]:
    return {row["scope_name"]: row for row in rows}


def _fields(row: dict, emitter: Emitter, call) -> tuple[dict, dict]:
    want = dataclasses.asdict(expected(emitter, call))
    return {name: row[name] for name in want}, want


@pytest.mark.parametrize("call", CALLS)
def test_each_call_is_two_root_spans_in_two_traces(double, call):
    spans = double["unconfigured"].manifest["calls"][call.name]
    assert sorted(s["scope"] for s in spans) == sorted([SDK_SCOPE, OPENLLMETRY_SCOPE])
    assert [s["parent_span_id"] for s in spans] == ["", ""]
    assert spans[0]["trace_id"] != spans[1]["trace_id"]


@pytest.mark.parametrize("call", CALLS)
def test_unconfigured_counts_every_call_twice(double, call):
    rows = _by_scope(double["unconfigured"].rows[call.name])
    assert sorted(rows) == sorted([SDK_SCOPE, OPENLLMETRY_SCOPE]), "one operation per instrumentation"
    got, want = _fields(rows[SDK_SCOPE], SDK, call)
    assert got == want
    got, want = _fields(rows[OPENLLMETRY_SCOPE], OPENLLMETRY, call)
    assert got == want


def test_unconfigured_totals_are_doubled(double):
    run = double["unconfigured"]
    assert totals(run.service) == expected_totals([SDK, OPENLLMETRY])
    assert analytics(run, "usage-summary")["totalRequests"] == 2 * len(ANTHROPIC_CALLS)


@pytest.mark.parametrize("ignored,kept", [
    pytest.param("openllmetry-ignored", SDK, id="openllmetry-ignored"),
    pytest.param("sdk-ignored", OPENLLMETRY, id="sdk-ignored"),
])
@pytest.mark.parametrize("call", CALLS)
def test_ignoring_one_scope_counts_each_call_once_from_the_other(double, ignored, kept, call):
    rows = double[ignored].rows[call.name]
    assert [row["scope_name"] for row in rows] == list(kept.scopes)
    got, want = _fields(rows[0], kept, call)
    assert got == want


def test_ignoring_openllmetry_totals_count_each_call_once(double):
    run = double["openllmetry-ignored"]
    assert totals(run.service) == expected_totals([SDK])
    summary = analytics(run, "usage-summary")
    assert (summary["totalRequests"], summary["failureCount"]) == (len(ANTHROPIC_CALLS), 2)
    # The SDK reports the API's own output counts, streams included: the stub's numbers.
    assert summary["outputTokens"] == expected_totals([SDK])["output_tokens"]


def test_ignoring_the_sdk_keeps_openllmetrys_stream_output_off_by_one(double):
    # Counted once, but each stream's output is one token over the API's: why the README recommends the other.
    streams = sum(call.stream for call in ANTHROPIC_CALLS)
    assert totals(double["sdk-ignored"].service)["output_tokens"] == expected_totals([SDK])["output_tokens"] + streams


# --- two OpenAI instrumentations: nested spans, counted once without any setting ----------------------------

OPENAI_V2_SCOPE, = EMITTERS["openai-v2"].scopes
OPENLLMETRY_OPENAI = EMITTERS["openllmetry-openai"]
OPENLLMETRY_OPENAI_SCOPE, = OPENLLMETRY_OPENAI.scopes


@pytest.fixture(scope="module")
def double_openai(start_service, provider_stub, tmp_path_factory) -> Run:
    service = start_service()
    manifest = drive(DOUBLE_OPENAI, provider_stub, [("http/protobuf", service.url)],
                     tmp_path_factory.mktemp("double-openai"), DOUBLE_OPENAI_ENV)
    return Run(OPENLLMETRY_OPENAI, service, manifest,
               rows_by_call(service, manifest))


@pytest.mark.parametrize("call", [pytest.param(call, id=call.name) for call in OPENAI_CALLS])
def test_nested_openai_instrumentations_count_the_leaf_once(double_openai, call):
    spans = {s["scope"]: s for s in double_openai.manifest["calls"][call.name]}
    outer, leaf = spans[OPENAI_V2_SCOPE], spans[OPENLLMETRY_OPENAI_SCOPE]
    assert (leaf["trace_id"], leaf["parent_span_id"]) == (outer["trace_id"], outer["span_id"]), "nested, one trace"
    rows = double_openai.rows[call.name]
    assert [(row["trace_id"], row["span_id"]) for row in rows] == [(leaf["trace_id"], leaf["span_id"])]
    got, want = _fields(rows[0], OPENLLMETRY_OPENAI, call)
    assert got == want


def test_nested_openai_instrumentations_totals_count_each_call_once(double_openai):
    assert totals(double_openai.service) == expected_totals([OPENLLMETRY_OPENAI])
    assert analytics(double_openai, "usage-summary")["totalRequests"] == len(OPENAI_CALLS)
