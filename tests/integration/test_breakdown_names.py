"""The breakdowns' queries and the JSON body ClickHouse writes for them.

`tests/api/test_rollup_exact.py` holds `breakdown()` (whichever query it runs)
to the raw rows; this pins which query decides, and the body's form. The single
pass (`_BREAKDOWN_ONE_NAME`) must flag every key whose name it cannot be sure
of, and for every key it does not flag its row must equal the exact query's.
The body must be what BreakdownItemSchema dumps from the same rows.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from app.api.dimensions import DIMENSIONS
from app.api.schemas import BreakdownItemSchema
from clickhouse import analytics
from clickhouse.analytics import Period
from tests.api.reference import HOUR_NS, ns
from tests.api.rows import insert_rows, operation

USERS = next(d for d in DIMENSIONS if d.rollup == "user")
T0 = ns("2025-03-03T00:00:00")
WHOLE_DAY = Period(T0 - 1, T0 + 24 * HOUR_NS + 1)  # raw edges, whole hours and no whole day
TWO_DAYS = Period(T0, T0 + 48 * HOUR_NS)


@pytest.fixture
def fresh(database):
    database.client().command("TRUNCATE TABLE operations")
    database.client().command("TRUNCATE TABLE usage_hourly")
    database.client().command("TRUNCATE TABLE usage_daily")
    return database


def both(database, period: Period) -> tuple[dict[str, tuple], dict[str, tuple]]:
    """Rows by key of the single pass (with its flag) and of the exact query."""
    sql, parameters = analytics.slices(USERS, period, analytics.BREAKDOWN_VALUES)
    parameters["unknown"] = USERS.unknown_label
    client = database.client()
    one = client.query(analytics._BREAKDOWN_ONE_NAME.format(slices=sql), parameters=parameters).result_rows
    exact = client.query(analytics._BREAKDOWN_NAMED.format(slices=sql), parameters=parameters).result_rows
    return {row[0]: tuple(row) for row in one}, {row[0]: tuple(row) for row in exact}


def undecided(rows: dict[str, tuple]) -> set[str]:
    return {key for key, row in rows.items() if row[4]}


def items(database, period: Period, dimension=USERS) -> list[tuple]:
    """(dimension, name, requests) of each item of the response body."""
    body = json.loads(analytics.breakdown(database, dimension, period))
    return [(item["dimension"], item["dimensionName"], item["requestCount"]) for item in body]


@pytest.mark.parametrize("period", [WHOLE_DAY, TWO_DAYS], ids=["edges-and-hours", "days"])
def test_one_name_per_key_is_decided_by_the_single_pass(fresh, period):
    insert_rows(fresh, [
        operation(T0 + 5, 1, user_id="u-1", user_name="Ada"),
        operation(T0 + 3 * HOUR_NS, 2, user_id="u-1", user_name="Ada"),
        operation(T0 + 20 * HOUR_NS, 3, user_id="u-2", user_name="Bob"),
        operation(T0 + 7 * HOUR_NS, 4, user_id="", user_name=""),
    ])
    one, exact = both(fresh, period)
    assert undecided(one) == set()
    assert {key: row[:4] for key, row in one.items()} == exact
    assert one["u-1"][1:3] == ("Ada", 2)


def test_two_names_of_one_key_are_left_to_the_exact_query(fresh):
    insert_rows(fresh, [
        operation(T0 + HOUR_NS, 1, user_id="u-1", user_name="Ada"),
        operation(T0 + 30 * HOUR_NS, 2, user_id="u-1", user_name="Ada L."),
        operation(T0 + 2 * HOUR_NS, 3, user_id="u-2", user_name="Bob"),
    ])
    one, exact = both(fresh, TWO_DAYS)
    assert undecided(one) == {"u-1"}
    assert one["u-2"][:4] == exact["u-2"]
    # The latest day's name, which a single max() over names would not give.
    assert exact["u-1"][1] == "Ada L."
    assert items(fresh, TWO_DAYS) == [("u-1", "Ada L.", 2), ("u-2", "Bob", 1)]


def test_cancel_rows_leave_a_key_to_the_exact_query_only_when_they_hide_a_name(fresh):
    # Late context moves calls between keys and states; none of it is merged yet.
    moved = operation(T0 + HOUR_NS, 1, user_id="u-1", user_name="Zed")  # its only "Zed" call moves away
    kept = operation(T0 + 3 * HOUR_NS, 2, user_id="u-1", user_name="Ada")
    anonymous = operation(T0 + 2 * HOUR_NS, 3, user_id="", user_name="")  # gets its user later
    restated = operation(T0 + 4 * HOUR_NS, 4, user_id="u-3", user_name="Cy")  # new profile, same user
    insert_rows(fresh, [moved, kept, anonymous, restated])
    insert_rows(fresh, [
        moved.cancelled(),
        anonymous.cancelled(), anonymous._replace(version=2, user_id="u-2", user_name="Bob"),
        restated.cancelled(), restated._replace(version=2, profile_id="p-9"),
    ])
    one, exact = both(fresh, TWO_DAYS)
    assert undecided(one) == {"u-1"}
    # The single pass alone would show "Zed", whose only call moved away.
    assert one["u-1"][1] == "Zed" and exact["u-1"][1] == "Ada"
    # A cancel row with the key's one name cannot hide it: decided, and exact.
    assert one["u-3"][:4] == exact["u-3"]
    assert "Anonymous" not in one and "Anonymous" not in exact
    assert items(fresh, TWO_DAYS) == [("u-1", "Ada", 1), ("u-2", "Bob", 1), ("u-3", "Cy", 1)]


NAMES = ["plain", "", 'quote " and \\ backslash', "a/b", "tab\tnew\nline\x01", "ünïcødé 😀", "<script>"]


@pytest.mark.parametrize("dimension", DIMENSIONS, ids=[d.rollup for d in DIMENSIONS])
def test_the_body_is_what_the_schema_dumps(fresh, dimension):
    rows = []
    for number, name in enumerate(NAMES):
        fields = {"provider": name, "request_model": name, "profile_id": name and f"p-{name}", "profile_alias": name,
                  "user_id": name and f"u-{name}", "user_name": name, "total_tokens": 10**12 + number}
        rows += [operation(T0 + number * HOUR_NS + 7, number * 10 + copy, **fields) for copy in range(number % 3 + 1)]
    insert_rows(fresh, rows)
    body = analytics.breakdown(fresh, dimension, WHOLE_DAY)

    # The same items through the exact query's rows and marshmallow.
    sql, parameters = analytics.slices(dimension, WHOLE_DAY, analytics.BREAKDOWN_VALUES)
    parameters["unknown"] = dimension.unknown_label
    template = analytics._BREAKDOWN_NAMED if dimension.has_name else analytics._BREAKDOWN_UNNAMED
    exact = fresh.client().query(template.format(slices=sql), parameters=parameters).result_rows
    exact.sort(key=lambda row: (-row[2], row[0].encode()))
    total = sum(row[2] for row in exact)
    expected = BreakdownItemSchema(many=True).dump(
        [SimpleNamespace(dimension=d, dimension_name=n or None, request_count=r, total_tokens=t, percentage=r * 100 / total) for d, n, r, t, *_ in exact]
    )
    assert json.loads(body) == expected
    assert len(expected) == len(NAMES)
    # Keys in the order Flask writes every other response (sorted), numbers unquoted.
    first = json.loads(body, object_pairs_hook=list)[0]
    assert [key for key, _ in first] == sorted(key for key, _ in first)
    assert b'"totalTokens":1000000000' in body
