"""Bring the rollups back in line with `operations` after a crash cut an insert short.

One insert of the ingester writes three tables in turn: `operations` (through
incoming_spans_mv), then `usage_hourly` (its view), then `usage_daily`
(usage_hourly's view). ClickHouse commits each table's part separately, so a
process killed in the middle of an insert can leave the rows stored in
`operations` and missing from a rollup. With embedded ClickHouse the engine
dies with the service, so a SIGKILL or the out-of-memory killer can do it
(tests/e2e/test_crash_durability.py; in every cut seen there the rollups
were behind, and the differences written here are signed either way). The
client re-sends the export it got no answer for, the ingester finds the spans
stored and drops them as duplicates, and without this repair the rollup would
stay short for good.

At start, before the ingester takes exports, `reconcile_recent` recomputes the
hours of the rows received in the last minute before the newest row (the
writer's last inserts: there is one writer, so at most one insert was in
flight) from `operations`, and writes the differences into `usage_hourly`,
whose view carries them into `usage_daily`; then the days of those hours in
`usage_daily` are matched against `usage_hourly`. Nothing differs after a clean
stop, so nothing is written.

Only for embedded ClickHouse: a ClickHouse server finishes an insert whose
data it has received even when the client process dies, and other processes
may be inserting while one starts, so comparing tables then would race with
their inserts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from clickhouse.analytics import Grouping

log = logging.getLogger(__name__)

# How far before the newest received row the last inserts may reach.
RECENT_SECONDS = 60

SUMS = ("requests", "input_tokens", "output_tokens", "total_tokens", "successes", "failures", "duration_ns")

_RECENT_HOURS = """
SELECT DISTINCT toUnixTimestamp(toStartOfHour(timestamp))
FROM operations
WHERE received_at >= (SELECT max(received_at) FROM operations) - toIntervalSecond({recent:UInt32})
"""

# Per (hour, key, name) of one dimension: what `operations` says minus what usage_hourly holds.
_HOURLY_DIFFERENCES = """
SELECT hour, key, name, {sums}
FROM (
    SELECT toStartOfHour(toDateTime(timestamp, 'UTC')) AS hour, {key_sql} AS key, {name_sql} AS name,
        sum(sign) AS requests, sum(sign * input_tokens) AS input_tokens, sum(sign * output_tokens) AS output_tokens,
        sum(sign * total_tokens) AS total_tokens, sum(sign * succeeded) AS successes,
        sum(sign * (1 - succeeded)) AS failures, sum(sign * duration_ns) AS duration_ns
    FROM operations
    WHERE timestamp >= fromUnixTimestamp64Nano({{first:Int64}}, 'UTC')
      AND timestamp < fromUnixTimestamp64Nano({{end:Int64}}, 'UTC')
      AND toUnixTimestamp(toStartOfHour(timestamp)) IN {{hours:Array(Int64)}}
    GROUP BY hour, key, name
    UNION ALL
    SELECT hour, key, name, {negated}
    FROM usage_hourly
    WHERE dimension = {{dimension:String}} AND toUnixTimestamp(hour) IN {{hours:Array(Int64)}}
)
GROUP BY hour, key, name
HAVING {any_nonzero}
"""

# Per (dimension, day, key, name): usage_hourly's sums minus what usage_daily holds.
_DAILY_DIFFERENCES = """
SELECT dimension, day, key, name, {sums}
FROM (
    SELECT dimension, toStartOfDay(hour) AS day, key, name, {plain}
    FROM usage_hourly
    WHERE toUnixTimestamp(toStartOfDay(hour)) IN {{days:Array(Int64)}}
    UNION ALL
    SELECT dimension, day, key, name, {negated}
    FROM usage_daily
    WHERE toUnixTimestamp(day) IN {{days:Array(Int64)}}
)
GROUP BY dimension, day, key, name
HAVING {any_nonzero}
"""

_FORMAT = {
    "sums": ", ".join(f"sum({s}) AS {s}" for s in SUMS),
    "plain": ", ".join(SUMS),
    "negated": ", ".join(f"-{s} AS {s}" for s in SUMS),
    "any_nonzero": " OR ".join(f"{s} != 0" for s in SUMS),
}


def reconcile_recent(client, groupings: Iterable[Grouping], recent_seconds: int = RECENT_SECONDS) -> int:
    """Repair the rollups for the hours of the last inserts; returns the rows written (0 when all agreed)."""
    hours = sorted(row[0] for row in client.query(_RECENT_HOURS, parameters={"recent": recent_seconds}).result_rows)
    if not hours:
        return 0
    written = 0
    bounds = {"hours": hours, "first": hours[0] * 10**9, "end": (hours[-1] + 3600) * 10**9}
    for grouping in groupings:
        sql = _HOURLY_DIFFERENCES.format(key_sql=grouping.key_sql, name_sql=grouping.name_sql, **_FORMAT)
        rows = client.query(sql, parameters={**bounds, "dimension": grouping.rollup}).result_rows
        if rows:
            client.insert("usage_hourly", [[grouping.rollup, *row] for row in rows], column_names=["dimension", "hour", "key", "name", *SUMS])
            written += len(rows)
    days = sorted({hour - hour % 86_400 for hour in hours})
    rows = client.query(_DAILY_DIFFERENCES.format(**_FORMAT), parameters={"days": days}).result_rows
    if rows:
        client.insert("usage_daily", rows, column_names=["dimension", "day", "key", "name", *SUMS])
        written += len(rows)
    if written:
        log.warning("repaired %d rollup rows for %d hour(s) that an interrupted insert left behind", written, len(hours))
    return written
