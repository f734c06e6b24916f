"""A start repairs rollups that an insert cut short left behind `operations` (clickhouse/reconcile.py).

One insert writes operations, then usage_hourly, then usage_daily, each
committed on its own; a process killed in between leaves rows in operations
that a rollup lacks, and the client's re-sent export is then a duplicate.
Here the cut is made deterministically: a view is detached while an export is
stored, so its rows stop where a crash would have stopped them. A second
service on the same database then starts, as a restart does, and the API
must answer from every storage level as if nothing had happened.
"""

from __future__ import annotations

import pytest
from opentelemetry import trace

from app.api.dimensions import DIMENSIONS
from clickhouse.analytics import EVERYTHING
from clickhouse.reconcile import reconcile_recent
from tests.api.reference import Sent, stamp
from tests.support.otel import Recorder, export, http_exporter, ids
from tests.support.service import InProcessService
from tests.support.usage import DAY, DAY_NS, FIRST_CALL, Calls, assert_analytics, assert_counted_once, get


def restart(service: InProcessService) -> InProcessService:
    """Another service on the same database: what a start after a crash does, before taking exports."""
    return InProcessService(service.settings)


def whole_day_requests(service) -> int:
    return get(service, "analytics/usage-summary", **{"from": stamp(DAY), "to": stamp(DAY + DAY_NS)})["totalRequests"]


@pytest.mark.parametrize("view", ["usage_hourly_mv", "usage_daily_mv"], ids=["cut before usage_hourly", "cut before usage_daily"])
def test_a_start_repairs_the_rollups_of_an_insert_cut_short(make_service, view):
    first = make_service()
    calls = Calls(step_ns=60 * 10**9)
    exporter = http_exporter(f"{first.url}/v1/traces", "protobuf")
    stored, cut = calls.batch(traces=10), calls.batch(traces=10)
    export(exporter, stored.spans)
    client = first.database.client()
    client.command(f"DETACH TABLE {view}")
    try:
        export(exporter, cut.spans)
    finally:
        client.command(f"ATTACH TABLE {view}")
    everything = {**stored.calls, **cut.calls}
    assert whole_day_requests(first) == len(stored.calls), "the cut left the daily rollup short"
    export(exporter, cut.spans)  # the client's retry is a duplicate: it does not mend the rollups
    assert whole_day_requests(first) == len(stored.calls)

    second = restart(first)
    try:
        assert_counted_once(second, everything)
        assert reconcile_recent(second.database.client(), (EVERYTHING, *DIMENSIONS)) == 0, "repaired once, then nothing to do"
        assert_counted_once(second, everything)
    finally:
        second.close()


def test_a_start_repairs_a_context_correction_cut_short(make_service):
    """A correction (cancel row plus new state) nets to zero in the totals: only the profile and user rollups show the cut."""
    first = make_service()
    exporter = http_exporter(f"{first.url}/v1/traces", "protobuf")
    recorder = Recorder({"service.name": "umbraco-site"})
    tracer = recorder.tracer("Umbraco.AI", "17.1.0")
    start = FIRST_CALL + 30 * 60 * 10**9
    request = tracer.start_span("POST /umbraco/management/api/v1/ai/chat", start_time=start, attributes={
        "umbraco.ai.profile.id": "p-1", "umbraco.ai.profile.alias": "writer",
        "umbraco.ai.user.id": "u-1", "umbraco.ai.user.name": "Ada",
    })
    chat = tracer.start_span("chat gpt-4o", context=trace.set_span_in_context(request), start_time=start + 1000, attributes={
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 40, "gen_ai.usage.output_tokens": 2,
    })
    chat.end(end_time=start + 1000 + 5_000_000)
    export(exporter, recorder.take())  # the call, before its request span ended
    request.end(end_time=start + 10_000_000)
    client = first.database.client()
    client.command("DETACH TABLE usage_hourly_mv")
    try:
        export(exporter, recorder.take())  # the request span: its correction reaches operations only
    finally:
        client.command("ATTACH TABLE usage_hourly_mv")
    attributed = Sent(start + 1000, 5_000_000, "openai", "gpt-4o", "", "p-1", "writer", "u-1", "Ada", 40, 2)
    profiles = get(first, "analytics/usage-by-profile", **{"from": stamp(DAY), "to": stamp(DAY + DAY_NS)})
    assert [item["dimension"] for item in profiles] == ["Unknown Profile"], "the cut left the profile rollup behind"

    second = restart(first)
    try:
        assert_counted_once(second, {"".join(ids(chat)): attributed})
        assert_analytics(second, {"".join(ids(chat)): attributed}, dimensions=("model", "profile", "user"))
    finally:
        second.close()
