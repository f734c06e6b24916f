"""The rollup-plus-edges queries equal an exact computation over the raw rows, for random data and ranges.

Rows go straight into `operations` (the materialized view fills `usage_hourly`),
including cancel rows and later versions as the ingester writes corrections.
The expectation is `sum(sign)` GROUP BY every column, read directly from
`operations`, aggregated by tests/api/reference.py.
"""

from __future__ import annotations

import random

import pytest
import requests

from tests.api import reference as ref
from tests.api.reference import HOUR_NS, Sent, ns
from tests.api.rows import Operation, insert_rows, operation

T0 = ns("2025-06-01T00:00:00")  # a Sunday: weeks straddle the data
SPAN_NS = 3 * 24 * HOUR_NS
ROUTES = {"provider": "usage-by-provider", "model": "usage-by-model", "profile": "usage-by-profile", "user": "usage-by-user"}
GRANULARITIES = {"Hourly": "hour", "day": "day", "Weekly": "week", "month": "month"}

PROVIDERS = ["openai", "anthropic", "azure.ai.openai", ""]
MODELS = [("gpt-4o", ""), ("gpt-4o", "gpt-4o-2024-08-06"), ("", "claude-3-haiku"), ("", ""), ("mistral", "")]
PROFILES = [("p-1", "writer"), ("p-1", "writer-v2"), ("p-2", ""), ("", ""), ("p-3", "seo")]
USERS = [("u-1", "Ada"), ("u-1", "Ada L."), ("u-2", ""), ("", ""), ("u-3", "Bob")]
# One name per key: the named breakdowns' single-pass query decides every key.
ONE_NAME = {
    "profiles": [("p-1", "writer"), ("p-2", ""), ("", ""), ("p-3", "seo")],
    "users": [("u-1", "Ada"), ("u-2", ""), ("", ""), ("u-3", "Bob")],
}
SEVERAL_NAMES = {"profiles": PROFILES, "users": USERS}

RAW = """
SELECT toUnixTimestamp64Nano(timestamp) AS ts, duration_ns, provider, request_model, response_model,
       profile_id, profile_alias, user_id, user_name, input_tokens, output_tokens, total_tokens, succeeded,
       sum(sign) AS net
FROM operations
WHERE timestamp >= fromUnixTimestamp64Nano({start:Int64}, 'UTC') AND timestamp < fromUnixTimestamp64Nano({end:Int64}, 'UTC')
GROUP BY ts, duration_ns, provider, request_model, response_model, profile_id, profile_alias, user_id, user_name,
         input_tokens, output_tokens, total_tokens, succeeded
HAVING net != 0
"""


def random_time(rng: random.Random) -> int:
    hour = T0 + rng.randrange(SPAN_NS // HOUR_NS) * HOUR_NS
    return rng.choice([hour, hour - 1, hour + 1, hour + rng.randrange(HOUR_NS)])


def random_operation(rng: random.Random, number: int, names: dict = SEVERAL_NAMES) -> Operation:
    request_model, response_model = rng.choice(MODELS)
    profile_id, profile_alias = rng.choice(names["profiles"])
    user_id, user_name = rng.choice(names["users"])
    input_tokens, output_tokens = rng.randrange(5000), rng.randrange(2000)
    return operation(
        random_time(rng), number, provider=rng.choice(PROVIDERS), request_model=request_model, response_model=response_model,
        profile_id=profile_id, profile_alias=profile_alias, user_id=user_id, user_name=user_name,
        input_tokens=input_tokens, output_tokens=output_tokens, total_tokens=input_tokens + output_tokens + rng.choice([0, 0, 17]),
        duration_ns=rng.randrange(10**10), succeeded=rng.random() < 0.8,
    )


def corrections(rng: random.Random, live: dict[str, Operation], count: int, names: dict = SEVERAL_NAMES) -> list[Operation]:
    """As the ingester corrects: cancel the stored state, then (usually) the next version with new context."""
    rows = []
    for key in rng.sample(sorted(live), count):
        state = live.pop(key)
        rows.append(state._replace(sign=-1))
        if rng.random() < 0.8:  # else it turned out to wrap another call: no new state
            profile_id, profile_alias = rng.choice(names["profiles"])
            user_id, user_name = rng.choice(names["users"])
            live[key] = state._replace(version=state.version + 1, profile_id=profile_id, profile_alias=profile_alias, user_id=user_id, user_name=user_name)
            rows.append(live[key])
    return rows


def exact(service, start: int, end: int) -> list[Sent]:
    rows = service.query(RAW, {"start": start, "end": end})
    return [
        Sent(r["ts"], r["duration_ns"], r["provider"], r["request_model"], r["response_model"], r["profile_id"], r["profile_alias"],
             r["user_id"], r["user_name"], r["input_tokens"], r["output_tokens"], r["total_tokens"], bool(r["succeeded"]), r["net"])
        for r in rows
    ]


def iso(value_ns: int) -> str:
    seconds = ref.stamp(value_ns)[:19]
    return f"{seconds}.{value_ns % 10**9:09d}Z"


def random_range(rng: random.Random) -> tuple[int, int]:
    start = random_time(rng) - HOUR_NS * rng.choice([0, 0, 1, 30])
    length = rng.choice([1, rng.randrange(1, HOUR_NS), HOUR_NS, rng.randrange(HOUR_NS, 5 * HOUR_NS), rng.randrange(SPAN_NS + 2 * HOUR_NS)])
    return start, start + max(length, 1)


def check_against_raw(service, rng: random.Random, rounds: int) -> None:
    base = f"{service.url}/umbraco/ai/management/api/v1/analytics"
    for _ in range(rounds):
        start, end = random_range(rng)
        sent = exact(service, start, end)
        query = {"from": iso(start), "to": iso(end)}
        context = f"range {query}"
        assert requests.get(f"{base}/usage-summary", params=query, timeout=10).json() == ref.summary(sent, start, end), context
        granularity = rng.choice(sorted(GRANULARITIES))
        series = requests.get(f"{base}/usage-time-series", params={**query, "granularity": granularity}, timeout=10).json()
        assert series == ref.time_series(sent, start, end, GRANULARITIES[granularity]), f"{context} {granularity}"
        for dimension, path in ROUTES.items():
            items = requests.get(f"{base}/{path}", params=query, timeout=10).json()
            assert items == ref.breakdown(sent, start, end, dimension), f"{context} {dimension}"


@pytest.mark.parametrize("names", [SEVERAL_NAMES, ONE_NAME], ids=["several-names", "one-name"])
@pytest.mark.parametrize("seed", [1, 2])
def test_rollup_and_edges_equal_raw_rows(make_service, seed, names):
    rng = random.Random(seed)
    service = make_service(role="api")
    live: dict[str, Operation] = {}
    for part in range(3):  # several inserts: unmerged parts in both tables
        batch = [random_operation(rng, part * 1000 + n, names) for n in range(300)]
        insert_rows(service.database, batch)
        live.update({op.span_id: op for op in batch})
    check_against_raw(service, rng, rounds=12)

    # New operations and corrections arrive: exact at once, before any merge.
    insert_rows(service.database, [random_operation(rng, 5000 + n, names) for n in range(100)] + corrections(rng, live, 150, names))
    insert_rows(service.database, corrections(rng, live, 60, names))
    check_against_raw(service, rng, rounds=12)

    # And after ClickHouse merged (collapsed and summed) everything.
    service.database.client().command("OPTIMIZE TABLE operations FINAL")
    service.database.client().command("OPTIMIZE TABLE usage_hourly FINAL")
    check_against_raw(service, rng, rounds=6)


def test_a_name_whose_calls_all_moved_away_is_not_shown_before_merges(make_service):
    """The rollup then holds +1 and -1 rows for that (hour, user, name) in different parts."""
    service = make_service(role="api")
    early = operation(T0 + HOUR_NS, 1, user_id="u-1", user_name="Ada")
    late = operation(T0 + 5 * HOUR_NS, 2, user_id="u-1", user_name="Zed")
    insert_rows(service.database, [early, late])
    insert_rows(service.database, [late._replace(sign=-1), late._replace(version=2, user_id="u-2", user_name="Bob")])
    query = {"from": iso(T0), "to": iso(T0 + 24 * HOUR_NS)}
    users = requests.get(f"{service.url}/umbraco/ai/management/api/v1/analytics/usage-by-user", params=query, timeout=10).json()
    assert [(item["dimension"], item["dimensionName"], item["requestCount"]) for item in users] == [("u-1", "Ada", 1), ("u-2", "Bob", 1)]
