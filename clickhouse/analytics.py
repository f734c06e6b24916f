"""Every query the analytics API and the audit log run: one parameterised query per request
(two for a named breakdown in the rare case `_BREAKDOWN_ONE_NAME` cannot decide).

Plan for a time range [start, end): the whole days inside it come from the
`usage_daily` rollup, the whole hours around them from `usage_hourly`, and
the partial hours at its edges from `operations` (sign-weighted, so cancelled
states drop out). All are shaped alike as (hour, key, name, sums), where
`hour` is the start of the row's hour or day, and joined with UNION ALL inside
one query; the outer query aggregates that. An hourly time series skips the
daily level (a day row cannot be split into hours); a range inside one hour
reads `operations` only.
See clickhouse/README.md for why rows are never updated.

SQL text is built only from constants of this module and of the dimension
registry (app/api/dimensions.py); every value travels as a bound
`{name:Type}` parameter.
"""

from __future__ import annotations

import enum
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
# negative (a correction not merged yet).
_DAILY_ROWS = """
SELECT day AS hour, key, name, {columns}
FROM usage_daily
WHERE dimension = {{dimension:String}}
  AND day >= toDateTime({{days_start:Int64}}, 'UTC') AND day < toDateTime({{days_end:Int64}}, 'UTC')"""

_HOURLY_ROWS = """
SELECT hour, key, name, {columns}
FROM usage_hourly
WHERE dimension = {{dimension:String}} AND ({ranges})"""

_HOURLY_RANGE = "(hour >= toDateTime({{{0}_start:Int64}}, 'UTC') AND hour < toDateTime({{{0}_end:Int64}}, 'UTC'))"

_RAW_RANGE = (
    "(timestamp >= fromUnixTimestamp64Nano({{{0}_start:Int64}}, 'UTC')"
    " AND timestamp < fromUnixTimestamp64Nano({{{0}_end:Int64}}, 'UTC'))"
)

# Raw rows at the range edges, one per stored row: every outer query sums
# them with the rollup rows anyway, so grouping them here first only added a
# second aggregation (about a third of a 24-hour breakdown at 100 M rows).
_RAW_ROWS = """
SELECT toStartOfHour(toDateTime(timestamp, 'UTC')) AS hour, {key_sql} AS key, {name_sql} AS name, {values}
FROM operations
WHERE {ranges}"""

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
    sum(total_tokens) AS tokens,
    request_count * 100 / sum(request_count) OVER () AS percentage
FROM ({slices})
GROUP BY key
HAVING request_count > 0"""

# The display name of a key: the name of the latest day in which the key has
# a positive count with that name (ties: the greatest name), for daily,
# hourly and raw rows alike (a day is the finest level every source has).
#
# Almost always a key has one name. When every positive rollup row of a key
# carries the same name, that name is the answer: a negative row (a
# correction not merged yet) copies a positive row of its key, so it has that
# name too, and whichever (key, day, name) sum is positive has that name. One
# aggregation by key then gives everything. `_BREAKDOWN_ONE_NAME` computes
# that and flags the keys it cannot decide (positive rows with two names);
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
    request_count * 100 / sum(request_count) OVER () AS percentage,
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
    tokens,
    request_count * 100 / sum(request_count) OVER () AS percentage
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


def slices(grouping: Grouping, period: Period, values: Sequence[str], days: bool = True) -> tuple[str, dict[str, Any]]:
    """(hour, key, name, *values) rows of a period: daily rows for whole days (unless
    `days` is false), hourly rows for the other whole hours, raw rows at the edges."""
    period = period.clamped()
    start, end = period.start_ns, period.end_ns
    hours = (_ceil(start, HOUR_NS), end // HOUR_NS * HOUR_NS)
    columns = ", ".join(values)
    parameters: dict[str, Any] = {"dimension": grouping.rollup}
    parts: list[str] = []
    if hours[0] < hours[1]:
        whole_days = (_ceil(start, DAY_NS), end // DAY_NS * DAY_NS)
        hourly = {"hours": hours}
        if days and whole_days[0] < whole_days[1]:
            parts.append(_DAILY_ROWS.format(columns=columns))
            parameters.update(days_start=whole_days[0] // 10**9, days_end=whole_days[1] // 10**9)
            hourly = {"before": (hours[0], whole_days[0]), "after": (whole_days[1], hours[1])}
        hourly = {name: bounds for name, bounds in hourly.items() if bounds[0] < bounds[1]}
        if hourly:
            ranges = " OR ".join(_HOURLY_RANGE.format(name) for name in hourly)
            parts.append(_HOURLY_ROWS.format(columns=columns, ranges=ranges))
            for name, (low, high) in hourly.items():
                parameters[f"{name}_start"], parameters[f"{name}_end"] = low // 10**9, high // 10**9
        edges = {"head": (start, hours[0]), "tail": (hours[1], end)}
        raw = {name: bounds for name, bounds in edges.items() if bounds[0] < bounds[1]}
    else:
        raw = {"span": (start, end)}
    if raw:
        ranges = " OR ".join(_RAW_RANGE.format(name) for name in raw)
        raw_values = ", ".join(f"{_VALUES[value]} AS {value}" for value in values)
        parts.append(_RAW_ROWS.format(key_sql=grouping.key_sql, name_sql=grouping.name_sql, values=raw_values, ranges=ranges))
        for name, (low, high) in raw.items():
            parameters[f"{name}_start"], parameters[f"{name}_end"] = low, high
    return "\nUNION ALL\n".join(parts), parameters


def _ceil(value: int, unit: int) -> int:
    return -(-value // unit) * unit


def summary(database: Database, period: Period) -> Summary:
    sql, parameters = slices(EVERYTHING, period, SUMMARY_VALUES)
    row = _query(database, _SUMMARY.format(slices=sql), parameters)[0]
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
    rows = _query(database, _SERIES.format(bucket=granularity.value, slices=sql), parameters)
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
_BREAKDOWN_JSON = """
SELECT
    toJSONString(arraySort(item -> (-item.requestCount, item.dimension), groupArray(CAST(
        (dimension, nullIf(dimension_name, ''), percentage, request_count, tokens),
        'Tuple(dimension String, dimensionName Nullable(String), percentage Float64, requestCount Int64, totalTokens Int64)'
    )))),
    {undecided}
FROM ({items})"""

# Numbers as JSON numbers, "/" unescaped, and never invalid UTF-8 in the body.
_JSON_SETTINGS = {
    "output_format_json_quote_64bit_integers": 0,
    "output_format_json_escape_forward_slashes": 0,
    "output_format_json_validate_utf8": 1,
}


def _breakdown_body(database: Database, items_sql: str, undecided: str, parameters: dict[str, Any]) -> tuple[bytes, int]:
    sql = _BREAKDOWN_JSON.format(items=items_sql, undecided=undecided)
    body, flagged = _query(database, sql, parameters, _JSON_SETTINGS)[0]
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
