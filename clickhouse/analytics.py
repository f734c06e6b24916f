"""Every query the analytics API and the audit log run: one parameterised query per request
(two for a named breakdown in the rare case `_BREAKDOWN_ONE_NAME` cannot decide).

Plan for a time range [start, end) (`_plan`): days from the `usage_daily`
rollup, hours from `usage_hourly` and the partial hours at its edges from
`operations` (sign-weighted, so cancelled states drop out), each range added
or subtracted: the edges are cut at the nearest hour and day boundaries, so
10:10-14:50 is hours 10:00-15:00 less the raw rows of 10:00-10:10 and
14:50-15:00. All are shaped alike as (hour, key, name, sums), where `hour` is
the start of the row's hour or day, and joined with UNION ALL inside one
query; the outer query aggregates that. An hourly time series skips the
daily level (a day row cannot be split into hours); a short range reads
`operations` only.
See clickhouse/README.md for why rows are never updated.

SQL text is built only from constants of this module and of the dimension
registry (app/api/dimensions.py); every value travels as a bound
`{name:Type}` parameter.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

from clickhouse.client import Database

HOUR_NS = 3_600 * 10**9
DAY_NS = 24 * HOUR_NS
# Time ranges are clamped to what both tables can hold: `usage_hourly.hour`
# is a DateTime (1970 to 2106) and the ingester accepts 1971-2200 only, so
# nothing stored lies outside and the answers stay the same.
MIN_NS = 0
MAX_NS = (2**32 - 1) // 3_600 * HOUR_NS
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class Grouping(Protocol):
    """What a query needs of a dimension (app/api/dimensions.py holds the real ones)."""

    @property
    def rollup(self) -> str: ...  # `usage_hourly.dimension`

    @property
    def key_sql(self) -> str: ...  # the key over `operations`, as the view in 0002 computes it

    @property
    def name_sql(self) -> str: ...  # the display name over `operations`, '' when none

    @property
    def unknown_label(self) -> str: ...  # the key shown for an empty key

    @property
    def has_name(self) -> bool: ...  # whether name_sql gives display names


@dataclass(frozen=True)
class _Everything:
    """The 'all' rollup: one group, for the summary and the time series."""

    rollup: str = "all"
    key_sql: str = "''"
    name_sql: str = "''"
    unknown_label: str = ""
    has_name: bool = False


EVERYTHING = _Everything()


class Granularity(enum.Enum):
    """Bucket sizes; the value is the bucket of the UTC hour column `hour`."""

    HOUR = "hour"
    DAY = "toStartOfDay(hour)"
    # ISO weeks start on Monday.
    WEEK = "toDateTime(toMonday(hour), 'UTC')"
    MONTH = "toDateTime(toStartOfMonth(hour), 'UTC')"


@dataclass(frozen=True)
class Period:
    """[start_ns, end_ns) in UTC nanoseconds since the epoch."""

    start_ns: int
    end_ns: int

    def clamped(self) -> Period:
        start = min(max(self.start_ns, MIN_NS), MAX_NS)
        return Period(start, min(max(self.end_ns, start), MAX_NS))


@dataclass(frozen=True)
class Summary:
    total_requests: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    success_count: int
    failure_count: int
    success_rate: float
    average_duration_ms: int


@dataclass(frozen=True)
class SeriesPoint:
    timestamp: datetime
    request_count: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    success_count: int
    failure_count: int


# The summed values: each rollup column, and its value on one raw
# `operations` row (sign-weighted, so cancelled states drop out). A query
# names the ones it sums, and only those columns are read.
_VALUES: dict[str, str] = {
    "requests": "sign",
    "input_tokens": "sign * input_tokens",
    "output_tokens": "sign * output_tokens",
    "total_tokens": "sign * total_tokens",
    "successes": "sign * succeeded",
    "failures": "sign * (1 - succeeded)",
    "duration_ns": "sign * duration_ns",
}
SUMMARY_VALUES = tuple(_VALUES)
SERIES_VALUES = ("requests", "input_tokens", "output_tokens", "total_tokens", "successes", "failures")
BREAKDOWN_VALUES = ("requests", "total_tokens")

# Rollup rows as stored: not grouped, because every outer query sums them
# anyway. Unmerged parts may hold several rows per (hour, key, name), some
# negative (a correction not merged yet). `{values}` are the summed columns,
# each times the sign of its range (see `_plan`).
_DAILY_ROWS = """
SELECT day AS hour, key, name, {values}
FROM usage_daily
WHERE dimension = {{dimension:String}} AND ({ranges})"""

_HOURLY_ROWS = """
SELECT hour, key, name, {values}
FROM usage_hourly
WHERE dimension = {{dimension:String}} AND ({ranges})"""

# Raw rows, one per stored row: every outer query sums them with the rollup
# rows anyway, so grouping them here first only added a second aggregation
# (about a third of a 24-hour breakdown at 100 M rows).
_RAW_ROWS = """
SELECT toStartOfHour(toDateTime(timestamp, 'UTC')) AS hour, {key_sql} AS key, {name_sql} AS name, {values}
FROM operations
WHERE {ranges}"""


class _Level(NamedTuple):
    """One source of rows: its query, its time column as bound, and its resolution."""

    rows: str
    column: str  # the time column compared with the range, `{0}` the parameter name
    scale: int  # ns per unit of the bound parameter
    # What a range of it costs in `_plan`: per hour of data it covers, and once
    # for touching the table at all (chdb plans each table read for a few ms).
    cost_per_hour: float


_TABLE_COST = 24.0
_DAILY = _Level(_DAILY_ROWS, "day {op} toDateTime({{{0}:Int64}}, 'UTC')", 10**9, 1 / 24)
_HOURLY = _Level(_HOURLY_ROWS, "hour {op} toDateTime({{{0}:Int64}}, 'UTC')", 10**9, 1.0)
# A raw hour holds one row per operation, an hourly one one per key.
_RAW = _Level(_RAW_ROWS, "timestamp {op} fromUnixTimestamp64Nano({{{0}:Int64}}, 'UTC')", 1, 30.0)


class _Piece(NamedTuple):
    """The rows of one level in [start, end), counted with `sign` (+1 or -1)."""

    level: _Level
    start: int
    end: int
    sign: int


_SUMMARY = """
SELECT
    sum(requests), sum(input_tokens), sum(output_tokens), sum(total_tokens),
    sum(successes), sum(failures), sum(duration_ns)
FROM ({slices})"""

_SERIES = """
SELECT
    toUnixTimestamp({bucket}) AS bucket,
    sum(requests) AS request_count, sum(input_tokens), sum(output_tokens), sum(total_tokens),
    sum(successes), sum(failures)
FROM ({slices})
GROUP BY bucket
HAVING request_count > 0
ORDER BY bucket"""

_BREAKDOWN_UNNAMED = """
SELECT
    if(key = '', {{unknown:String}}, key) AS dimension,
    '' AS dimension_name,
    sum(requests) AS request_count,
    sum(total_tokens) AS tokens
FROM ({slices})
GROUP BY key
HAVING request_count > 0"""

# The display name of a key: the name of the latest day in which the key has
# a positive count with that name (ties: the greatest name), for daily,
# hourly and raw rows alike (a day is the finest level every source has).
#
# Almost always a key has one name. When every positive row of a key carries
# the same name, that name is the answer: a (key, day, name) whose sum is
# positive has a positive row, so that name is the only one whose sum can be
# positive. Negative rows (a correction not merged yet, a subtracted range)
# do not matter to that. One aggregation by key then gives everything.
# `_BREAKDOWN_ONE_NAME` computes that and flags the keys it cannot decide (positive rows with two names);
# only when some key is flagged is the exact `_BREAKDOWN_NAMED` run, which
# sums per (key, day, name) first. The empty key is shown as the unknown
# label without a name, so it is never flagged.
# The flag is computed inside the aggregation: computed in the outer SELECT
# (with an ORDER BY after it), chdb 4.x's plan optimiser loops until it gives
# up (TOO_MANY_QUERY_PLAN_OPTIMIZATIONS).
_BREAKDOWN_ONE_NAME = """
SELECT
    if(key = '', {{unknown:String}}, key) AS dimension,
    if(key = '', '', top_name) AS dimension_name,
    request_count,
    tokens,
    undecided
FROM (
    SELECT key, sum(requests) AS request_count, sum(total_tokens) AS tokens,
           maxIf(name, requests > 0) AS top_name,
           key != '' AND top_name != minIf(name, requests > 0) AS undecided
    FROM ({slices})
    GROUP BY key
    HAVING request_count > 0
)"""

# The exact rule for every key. Day and name are compared as one string, the
# day as 8 hex digits first, so that max() orders by (day, name) on the fast
# String path (a tuple argument is ~5x slower). The rows are summed per
# (key, day, name) first, so a correction that is not merged yet (a negative
# row) cancels its positive row before the name is chosen; the slices are
# read once (a CTE read in two places is computed twice).
_DAY_NAME = "concat(hex(toUInt32(toStartOfDay(hour))), name)"
_DAY_DIGITS = 8

_BREAKDOWN_NAMED = f"""
SELECT
    if(key = '', {{{{unknown:String}}}}, key) AS dimension,
    if(key = '', '', substring(latest, {_DAY_DIGITS + 1})) AS dimension_name,
    request_count,
    tokens
FROM (
    SELECT key, sum(day_requests) AS request_count, sum(day_tokens) AS tokens,
           maxIf(day_name, day_requests > 0) AS latest
    FROM (
        SELECT key, {_DAY_NAME} AS day_name, sum(requests) AS day_requests, sum(total_tokens) AS day_tokens
        FROM ({{slices}})
        GROUP BY key, day_name
    )
    GROUP BY key
    HAVING request_count > 0
)"""


# Every slice filters on its table's sort key (dimension and time), so moving
# a condition to PREWHERE saves no reading, and at 100 M rows the step cost
# 5-13 % of a 30-day query (measured in turn with and without).
_SLICE_SETTINGS = {"optimize_move_to_prewhere": 0}


def slices(grouping: Grouping, period: Period, values: Sequence[str], days: bool = True) -> tuple[str, dict[str, Any]]:
    """(hour, key, name, *values) rows that sum to the period's: see `_plan`. `days`
    false keeps every row within its hour (an hourly time series)."""
    pieces = _plan(period.clamped(), days, time.time_ns())
    parameters: dict[str, Any] = {"dimension": grouping.rollup}
    parts: list[str] = []
    for level in (_DAILY, _HOURLY, _RAW):
        ranges = [piece for piece in pieces if piece.level is level]
        if not ranges:
            continue
        conditions = []
        for piece in ranges:
            name = f"range{len(parameters) // 2}"
            parameters[f"{name}_start"], parameters[f"{name}_end"] = piece.start // level.scale, piece.end // level.scale
            conditions.append(
                f"({level.column.format(f'{name}_start', op='>=')} AND {level.column.format(f'{name}_end', op='<')})"
            )
        # At most two ranges per level, one per edge. With different signs the
        # sign is computed once per row under a name: written into each summed
        # column instead, the repeated condition cost more planning than reading.
        assert len(ranges) <= 2, pieces
        signs = {piece.sign for piece in ranges}
        prefix, factor = "", ""
        if len(signs) == 2:
            prefix, factor = f"WITH if({conditions[0]}, {ranges[0].sign}, {ranges[1].sign}) AS piece_sign", "piece_sign * "
        elif signs == {-1}:
            factor = "-1 * "
        if level is _RAW:
            summed = ", ".join(f"{factor}{_VALUES[value]} AS {value}" for value in values)
            rows = level.rows.format(key_sql=grouping.key_sql, name_sql=grouping.name_sql, values=summed, ranges=" OR ".join(conditions))
        else:
            summed = ", ".join(f"{factor}{value} AS {value}" if factor else value for value in values)
            rows = level.rows.format(values=summed, ranges=" OR ".join(conditions))
        parts.append(prefix + rows)
    if not parts:  # an empty period: a raw read of nothing keeps the query's shape
        summed = ", ".join(f"{_VALUES[value]} AS {value}" for value in values)
        parts.append(_RAW_ROWS.format(key_sql=grouping.key_sql, name_sql=grouping.name_sql, values=summed, ranges="0"))
    return "\nUNION ALL\n".join(parts), parameters


def _plan(period: Period, days: bool, now_ns: int) -> list[_Piece]:
    """Signed ranges of daily, hourly and raw rows whose sum is exactly the period's rows.

    [start, end) is cut at an hour boundary near each edge and, inside that, at
    a day boundary near each edge:
        [start, end) = raw(start -> h0) + hourly(h0 -> d0) + daily[d0, d1) + hourly(d1 -> h1) + raw(h1 -> end)
    where x(a -> b) is +[a, b) when a < b and -[b, a) when b < a. Every sum is
    linear and each rollup row holds exactly its hour's (or day's) rows, so the
    identity holds for each key, each day and each bucket of a time series, and
    a boundary may lie outside the period: a range ending now subtracts the
    rest of the current hour (nearly always empty) instead of reading the raw
    rows of the part that passed. Of the possible cuts the one estimated to
    read least (`_cost`) is taken; all are exact. Without `days` there is no
    daily level, so that every row stays within its own hour.
    """
    start, end = period.start_ns, period.end_ns
    if start >= end:
        return []
    best = [_Piece(_RAW, start, end, 1)]
    best_cost = _cost(best, now_ns)
    for h0 in _nearby(start, HOUR_NS):
        for h1 in _nearby(end, HOUR_NS):
            if h0 >= h1:
                continue
            outer = _signed(_RAW, start, h0) + _signed(_RAW, h1, end)
            options = [[_Piece(_HOURLY, h0, h1, 1)]]
            if days:
                options += [
                    _signed(_HOURLY, h0, d0) + [_Piece(_DAILY, d0, d1, 1)] + _signed(_HOURLY, d1, h1)
                    for d0 in _nearby(h0, DAY_NS)
                    for d1 in _nearby(h1, DAY_NS)
                    if d0 < d1
                ]
            for inner in options:
                pieces = outer + inner
                cost = _cost(pieces, now_ns)
                if cost < best_cost:
                    best, best_cost = pieces, cost
    return best


def _nearby(value: int, unit: int) -> set[int]:
    """The boundaries of `unit` on either side of `value` that a query can bound with."""
    return {bound for bound in (value // unit * unit, _ceil(value, unit)) if MIN_NS <= bound <= MAX_NS}


def _signed(level: _Level, a: int, b: int) -> list[_Piece]:
    """x(a -> b): +[a, b), or -[b, a) when b < a."""
    if a == b:
        return []
    return [_Piece(level, a, b, 1)] if a < b else [_Piece(level, b, a, -1)]


def _cost(pieces: list[_Piece], now_ns: int) -> float:
    """An estimate of what the pieces read: hours of data per level (none after now:
    operations are stored when they happen), and each table touched."""
    hours = sum(max(0, min(piece.end, now_ns) - piece.start) / HOUR_NS * piece.level.cost_per_hour for piece in pieces)
    return len({piece.level for piece in pieces}) * _TABLE_COST + hours


def _ceil(value: int, unit: int) -> int:
    return -(-value // unit) * unit


def summary(database: Database, period: Period) -> Summary:
    sql, parameters = slices(EVERYTHING, period, SUMMARY_VALUES)
    row = _query(database, _SUMMARY.format(slices=sql), parameters, _SLICE_SETTINGS)[0]
    requests, input_tokens, output_tokens, total_tokens, successes, failures, duration_ns = (int(v) for v in row)
    return Summary(
        total_requests=requests,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=total_tokens,
        success_count=successes,
        failure_count=failures,
        success_rate=successes / requests if requests > 0 else 0.0,
        # From the integer nanosecond sum, so no float rounding moves the floor.
        average_duration_ms=duration_ns // (requests * 1_000_000) if requests > 0 else 0,
    )


def time_series(database: Database, period: Period, granularity: Granularity) -> list[SeriesPoint]:
    sql, parameters = slices(EVERYTHING, period, SERIES_VALUES, days=granularity is not Granularity.HOUR)
    rows = _query(database, _SERIES.format(bucket=granularity.value, slices=sql), parameters, _SLICE_SETTINGS)
    return [
        SeriesPoint(datetime.fromtimestamp(bucket, UTC), *(int(v) for v in sums))
        for bucket, *sums in rows
    ]


def breakdown(database: Database, grouping: Grouping, period: Period) -> bytes:
    """The breakdown as its response body: a JSON array of `BreakdownItemSchema` objects.

    ClickHouse writes the JSON itself: a breakdown by user holds thousands of
    items, and turning them into Python objects and back cost more than the
    query (tests/integration/test_breakdown_names.py holds it to the schema).
    """
    sql, parameters = slices(grouping, period, BREAKDOWN_VALUES)
    parameters["unknown"] = grouping.unknown_label
    if not grouping.has_name:
        return _breakdown_body(database, _BREAKDOWN_UNNAMED.format(slices=sql), "0", parameters)[0]
    body, undecided = _breakdown_body(database, _BREAKDOWN_ONE_NAME.format(slices=sql), "countIf(undecided)", parameters)
    if undecided:
        body, _ = _breakdown_body(database, _BREAKDOWN_NAMED.format(slices=sql), "0", parameters)
    return body


# The items as BreakdownItemSchema dumps them: camelCase keys in alphabetical
# order, an empty name as null, sorted by request count (descending), then key.
# The percentage is computed here from the total of the same aggregation (a
# window function over the items cost a plan step of its own).
_BREAKDOWN_JSON = """
SELECT
    toJSONString(arraySort(item -> (-item.requestCount, item.dimension), arrayMap(row -> CAST(
        (row.1, nullIf(row.2, ''), row.3 * 100 / total, row.3, row.4),
        'Tuple(dimension String, dimensionName Nullable(String), percentage Float64, requestCount Int64, totalTokens Int64)'
    ), groupArray((dimension, dimension_name, request_count, tokens))))),
    sum(request_count) AS total,
    {undecided}
FROM ({items})"""

# Numbers as JSON numbers, "/" unescaped, and never invalid UTF-8 in the body.
_JSON_SETTINGS = {
    **_SLICE_SETTINGS,
    "output_format_json_quote_64bit_integers": 0,
    "output_format_json_escape_forward_slashes": 0,
    "output_format_json_validate_utf8": 1,
}


def _breakdown_body(database: Database, items_sql: str, undecided: str, parameters: dict[str, Any]) -> tuple[bytes, int]:
    sql = _BREAKDOWN_JSON.format(items=items_sql, undecided=undecided)
    body, _, flagged = _query(database, sql, parameters, _JSON_SETTINGS)[0]
    return body.encode("utf-8") if isinstance(body, str) else body, int(flagged)


# --- Audit log: live states of single operations ------------------------------------

AUDIT_STATUSES = {"Succeeded": True, "Failed": False}


@dataclass(frozen=True)
class AuditFilter:
    status: str | None = None  # a key of AUDIT_STATUSES
    user_id: str | None = None
    profile_id: str | None = None
    provider_id: str | None = None
    entity_id: str | None = None
    from_ns: int | None = None  # inclusive
    to_ns: int | None = None  # inclusive
    search_text: str | None = None
    skip: int = 0
    take: int = 100


class MetadataEntry(NamedTuple):
    key: str
    value: str


@dataclass(frozen=True)
class AuditEntry:
    trace_id: str
    span_id: str
    start_ns: int
    duration_ns: int
    status: str
    capability: str
    provider_id: str | None
    model_id: str | None
    profile_id: str | None
    profile_alias: str | None
    user_id: str | None
    user_name: str | None
    entity_id: str | None
    entity_type: str | None
    feature_type: str | None
    feature_id: str | None
    input_tokens: int
    output_tokens: int
    total_tokens: int
    error_message: str | None
    metadata: list[MetadataEntry] = field(default_factory=list)

    @property
    def id(self) -> str:
        """The audit id: trace id + span id, 48 hex characters, unique per operation."""
        return self.trace_id + self.span_id

    @property
    def duration_ms(self) -> int:
        return self.duration_ns // 1_000_000

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.duration_ns


@dataclass(frozen=True)
class AuditPage:
    items: list[AuditEntry]
    total: int


def _text(column: str) -> str:
    """A text column; '' (not set) as NULL."""
    return f"nullIf(toString({column}), '')"


# Columns of one state, in AuditEntry order.
_ENTRY: tuple[str, ...] = (
    "trace_id",
    "span_id",
    "toUnixTimestamp64Nano(timestamp)",
    "duration_ns",
    "if(succeeded, 'Succeeded', 'Failed')",
    "toString(capability)",
    _text("provider"),
    _text("if(request_model != '', request_model, response_model)"),
    _text("profile_id"),
    _text("profile_alias"),
    _text("user_id"),
    _text("user_name"),
    _text("entity_id"),
    _text("entity_type"),
    _text("feature_type"),
    _text("feature_id"),
    "input_tokens",
    "output_tokens",
    "total_tokens",
    _text("error_message"),
    "attributes",
)

# Live states: a +1 row whose (timestamp, trace, span, version) has no cancel
# row. The ingester writes each state once and cancels it at most once with an
# exact copy (sign -1), so this is "the version's signs sum to > 0" without
# grouping the whole table, and ORDER BY the sort key with LIMIT reads only
# the newest granules. Cancel rows are few (corrections, until merged away).
_LIVE = """
FROM operations
WHERE sign = 1 AND {conditions}
  AND (timestamp, trace_id, span_id, version) NOT IN (
      SELECT timestamp, trace_id, span_id, version FROM operations WHERE sign = -1 AND {conditions})"""

# Filters of the audit list; each is a constant fragment whose values are bound.
_AUDIT_CONDITIONS: dict[str, str] = {
    "status": "succeeded = {status:Bool}",
    "user_id": "user_id = {user_id:String}",
    "profile_id": "profile_id = {profile_id:String}",
    "provider_id": "provider = {provider_id:String}",
    "entity_id": "entity_id = {entity_id:String}",
    "from_ns": "timestamp >= fromUnixTimestamp64Nano({from_ns:Int64}, 'UTC')",
    "to_ns": "timestamp <= fromUnixTimestamp64Nano({to_ns:Int64}, 'UTC')",
    "search_text": (
        "(positionCaseInsensitiveUTF8(request_model, {search_text:String}) > 0"
        " OR positionCaseInsensitiveUTF8(response_model, {search_text:String}) > 0"
        " OR positionCaseInsensitiveUTF8(error_message, {search_text:String}) > 0)"
    ),
}

# One query: the number of live states matching (a cancel row copies the
# state it cancels, so sum(sign) over the matching rows counts them), and the
# requested page, newest first, as one array so an empty page still has a total.
_AUDIT_PAGE = f"""
SELECT
    (SELECT sum(sign) FROM operations WHERE {{conditions}}) AS total,
    (SELECT groupArray(entry) FROM (
        SELECT tuple({", ".join(_ENTRY)}) AS entry
        {_LIVE}
        ORDER BY timestamp DESC, trace_id DESC, span_id DESC
        LIMIT {{{{take:UInt32}}}} OFFSET {{{{skip:UInt64}}}}
    )) AS page"""

_AUDIT_ONE = f"""
SELECT {", ".join(_ENTRY)}
{_LIVE}
ORDER BY version DESC
LIMIT 1""".format(conditions="trace_id = {trace_id:String} AND span_id = {span_id:String}")


def audit_page(database: Database, wanted: AuditFilter) -> AuditPage:
    conditions = ["1"]
    parameters: dict[str, Any] = {"skip": wanted.skip, "take": wanted.take}
    for name, fragment in _AUDIT_CONDITIONS.items():
        value = getattr(wanted, name)
        if value is None:
            continue
        if name in ("from_ns", "to_ns"):
            # Any ISO 8601 date is accepted (years 1-9999); the parameter is an
            # Int64 of nanoseconds, whose range DateTime64(9) spans (1677-2262)
            # and every stored operation lies in. Clamped, a date past it keeps
            # its meaning; unclamped it wrapped around and matched everything.
            value = min(max(value, INT64_MIN), INT64_MAX)
        elif name == "status":
            value = AUDIT_STATUSES[value]
        conditions.append(fragment)
        parameters[name] = value
    sql = _AUDIT_PAGE.format(conditions=" AND ".join(conditions))
    total, page = _query(database, sql, parameters)[0]
    entries = [_entry(row) for row in page]
    # groupArray need not keep the subquery's order; the tuple has the sort key.
    entries.sort(key=lambda e: (e.start_ns, e.trace_id, e.span_id), reverse=True)
    return AuditPage(entries, int(total))


def audit_entry(database: Database, trace_id: str, span_id: str) -> AuditEntry | None:
    rows = _query(database, _AUDIT_ONE, {"trace_id": trace_id, "span_id": span_id})
    return _entry(rows[0]) if rows else None


def _entry(row: Sequence[Any]) -> AuditEntry:
    *values, attributes = row
    return AuditEntry(*values, metadata=[MetadataEntry(k, v) for k, v in sorted(attributes.items())])


def _query(database: Database, sql: str, parameters: dict[str, Any], settings: dict[str, Any] | None = None) -> list[Sequence[Any]]:
    return database.client().query(sql, parameters=parameters, settings=settings).result_rows
