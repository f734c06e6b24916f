"""The ingester's side of the operations table: stage new calls, look up stored states, correct them.

Data for a statement travels as ONE String parameter parsed by the `format()`
table function (JSONCompactColumns, a JSON array per column): an
`Array(Tuple(...))` parameter of tens of thousands of elements takes minutes
to bind in chdb, the string a fraction of a second, and no value is ever
formatted into SQL text. One `orjson.dumps` of the columns costs 0.1 us per
row where a JSON object per row (JSONEachRow) cost 1.7, on the writer's path.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from contextlib import contextmanager

import orjson
from clickhouse_connect.driver.exceptions import DatabaseError

from clickhouse import staging
from clickhouse.client import Database, TextParameter
from ingest.errors import StorageRejected
from ingest.mapping import CONTEXT_FIELDS
from ingest.store import Change, LiveState, LookupKeys, StagedCall, StoredState

# ClickHouse error codes that mean "this data cannot be stored", as opposed to
# "storage cannot be reached now": parse and type errors, values out of range.
# 444 (UNKNOWN_PROTOBUF_FORMAT): a span's bytes that Python's decoder accepts
# but ClickHouse's does not (a declared field sent with another wire type,
# which protobuf-python keeps as an unknown field).
DATA_ERRORS = frozenset({6, 26, 27, 32, 38, 41, 53, 69, 70, 72, 117, 131, 349, 407, 444, 691})


@contextmanager
def _refusals_are_permanent():
    try:
        yield
    except DatabaseError as error:
        code = getattr(error, "code", None)
        if code in DATA_ERRORS:
            raise StorageRejected(f"ClickHouse refused the data (code {code}): {str(error)[:300]}") from error
        raise


# New operations never collapse or sum with each other inside one insert (each
# span once, the rollup views group their block already), so skip ClickHouse's
# merge-on-insert pass over the block: a few percent of every insert.
_INSERT_SETTINGS = {"optimize_on_insert": 0}

_KEYS = "format(JSONCompactColumns, 'ts Int64, trace_id String, span_id String', {keys:String})"

_STATE_COLUMNS = f"""
    trace_id, span_id, version, sum(sign) AS net, any(toUnixTimestamp64Nano(timestamp)) AS ts,
    any(parent_span_id) AS parent, max(input_tokens + output_tokens + total_tokens > 0) AS has_tokens,
    {", ".join(f"any({name})" for name in CONTEXT_FIELDS)},
    any(mapFilter((k, v) -> has({{context_keys:Array(String)}}, k), attributes)) AS context_attributes
"""

# The duplicate check reads every stored row whose granule the keys' start times
# select: for a group of new spans, the last half minute or so of ingest. The
# PREWHERE reads only `span_id` for those rows and the other key columns only
# where it matches (nearly never): a third of the CPU of testing the
# (timestamp, trace_id, span_id) tuple on every row. The tuple still decides,
# and still bounds the granules read through the sort key. The span ids come
# again as a parameter of their own: a quarter of the keys' text to parse.
_LOOKUP_BY_KEY = f"""
SELECT {_STATE_COLUMNS}
FROM operations
PREWHERE span_id IN (SELECT span_id FROM format(JSONCompactColumns, 'span_id String', {{span_ids:String}}))
WHERE (timestamp, trace_id, span_id) IN (SELECT fromUnixTimestamp64Nano(ts, 'UTC'), trace_id, span_id FROM {_KEYS})
GROUP BY trace_id, span_id, version
"""

_LOOKUP_BY_TRACE = f"""
SELECT {_STATE_COLUMNS}
FROM operations
WHERE timestamp >= fromUnixTimestamp64Nano({{start:Int64}}, 'UTC')
  AND timestamp <= fromUnixTimestamp64Nano({{end:Int64}}, 'UTC')
  AND trace_id IN (SELECT trace_id FROM format(JSONCompactColumns, 'trace_id String', {{traces:String}}))
GROUP BY trace_id, span_id, version
"""

# All columns of `operations` that a correction copies, in table order.
_COLUMNS = (
    "timestamp trace_id span_id parent_span_id sign version service_name scope_name scope_version span_name "
    "capability operation provider provider_raw request_model response_model "
    f"{' '.join(CONTEXT_FIELDS)} "
    "input_tokens output_tokens total_tokens cache_read_tokens cache_write_tokens reasoning_tokens "
    "duration_ns succeeded error_type error_message streaming conversation_id server_address attributes"
).split()


def _correction_sql() -> str:
    """Cancel the live state of each changed operation and, when it still counts,
    write the same row with the next version and the new context."""
    changes_structure = "ts Int64, trace_id String, span_id String, counted UInt8, " + ", ".join(
        f"{name} String" for name in CONTEXT_FIELDS
    )
    context_differs = (
        "(" + ", ".join(f"live.{n}" for n in CONTEXT_FIELDS) + ") != (" + ", ".join(f"wanted.{n}" for n in CONTEXT_FIELDS) + ")"
    )
    select = []
    for column in _COLUMNS:
        if column == "sign":
            select.append("new_sign")
        elif column == "version":
            select.append("if(new_sign = 1, live.version + 1, live.version)")
        elif column in CONTEXT_FIELDS:
            select.append(f"if(new_sign = 1, wanted.{column}, live.{column})")
        else:
            select.append(f"live.{column}")
    keys = "SELECT fromUnixTimestamp64Nano(ts, 'UTC') AS t, trace_id, span_id FROM changes"
    return f"""
INSERT INTO operations ({", ".join(_COLUMNS)})
WITH changes AS (SELECT * FROM format(JSONCompactColumns, '{changes_structure}', {{changes:String}}))
SELECT {", ".join(select)}
FROM (
    SELECT * FROM operations
    WHERE (timestamp, trace_id, span_id) IN ({keys})
      AND sign = 1
      AND (trace_id, span_id, version) NOT IN (
          SELECT trace_id, span_id, version FROM operations
          WHERE (timestamp, trace_id, span_id) IN ({keys}) AND sign = -1)
) AS live
INNER JOIN changes AS wanted ON live.trace_id = wanted.trace_id AND live.span_id = wanted.span_id
ARRAY JOIN if(wanted.counted = 1, if({context_differs}, [-1, 1], []), [-1]) AS new_sign
"""


_CORRECT = _correction_sql()


class OperationStore:
    def __init__(self, database: Database, context_keys: Iterable[str] = ()):
        self.database = database
        self.context_keys = sorted(set(context_keys))

    def healthy(self) -> bool:
        """Whether the tables can be reached (the batcher's probe while storage is down)."""
        try:
            return self.database.client().command("EXISTS TABLE operations") == 1
        except Exception:  # noqa: BLE001 - any failure means "not yet"
            self.database.discard_client()
            return False

    def stage(self, calls: Sequence[StagedCall]) -> None:
        """Write new operations: the rows the compiled pass mapped straight into
        `operations`, the rest through incoming_spans_mv, one insert per encoding.

        A write that fails after one of its inserts is retried by the exporter;
        the duplicate look-up then finds the calls stored and skips them."""
        client = self.database.client()
        with _refusals_are_permanent():
            self._insert(client, staging.encode(calls))

    def _insert(self, client, encoded: staging.Encoded) -> None:
        if encoded.direct:
            client.raw_insert("operations", staging.DIRECT_COLUMN_NAMES, encoded.direct, fmt="Native", settings=_INSERT_SETTINGS)
        if encoded.protobuf:
            settings = {**staging.schema_settings(self.database.embedded), **_INSERT_SETTINGS}
            client.raw_insert(staging.TABLE, None, encoded.protobuf, fmt="Protobuf", settings=settings)
        if encoded.json:
            client.raw_insert(staging.TABLE, None, b"\n".join(encoded.json), fmt="JSONEachRow", settings=_INSERT_SETTINGS)

    def correct(self, changes: Sequence[Change]) -> None:
        if not changes:
            return
        rows = [
            (change.timestamp_ns, change.trace_id, change.span_id, int(change.counted), *change.context)
            for change in changes
        ]
        self.database.client().command(_CORRECT, parameters={"changes": _columns(rows)})

    def lookup(self, keys: LookupKeys) -> dict[tuple[str, str], StoredState]:
        """Stored states of spans, by (trace id, span id)."""
        if not keys.span_ids:
            return {}
        parameters = {
            "keys": TextParameter(orjson.dumps((keys.starts, keys.trace_ids, keys.span_ids)).decode()),
            "span_ids": TextParameter(orjson.dumps((keys.span_ids,)).decode()),
            "context_keys": self.context_keys,
        }
        result = self.database.client().query(_LOOKUP_BY_KEY, parameters=parameters)
        return _states(result.result_rows)

    def in_traces(self, trace_ids: Iterable[str], start_ns: int, end_ns: int) -> dict[tuple[str, str], StoredState]:
        """Stored states of the operations of some traces that started within a time range."""
        rows = [(trace,) for trace in sorted(set(trace_ids))]
        if not rows:
            return {}
        result = self.database.client().query(
            _LOOKUP_BY_TRACE,
            parameters={"traces": _columns(rows), "start": start_ns, "end": end_ns, "context_keys": self.context_keys},
        )
        return _states(result.result_rows)


def _columns(rows: Sequence[Sequence]) -> TextParameter:
    """Rows as the JSON text of their columns, for `format(JSONCompactColumns, ...)`."""
    return TextParameter(orjson.dumps(list(zip(*rows))).decode())


def _states(rows: Iterable[Sequence]) -> dict[tuple[str, str], StoredState]:
    """Per span: the highest version seen, and the latest version whose signs sum to +1."""
    versions: dict[tuple[str, str], list[tuple[int, LiveState | None]]] = defaultdict(list)
    width = len(CONTEXT_FIELDS)
    for trace, span, version, net, ts, parent, has_tokens, *rest in rows:
        context, context_attributes = tuple(rest[:width]), rest[width]
        live = LiveState(ts, parent, bool(has_tokens), version, context, dict(context_attributes)) if net > 0 else None
        versions[(trace, span)].append((version, live))
    states = {}
    for key, found in versions.items():
        found.sort(key=lambda item: item[0])
        live = next((state for _, state in reversed(found) if state is not None), None)
        states[key] = StoredState(found[-1][0], live)
    return states
