"""The ingester's side of the operations table: insert rows, look up stored states.

Keys travel to ClickHouse as one String parameter parsed by the `format()`
table function: an `Array(Tuple(...))` parameter of tens of thousands of keys
takes minutes to bind in chdb, the TSV string a fraction of a second.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from clickhouse.client import Database
from ingest.operation import COLUMNS, Operation

_SELECT_COLUMNS = ", ".join(
    "toUnixTimestamp64Nano(timestamp)" if column == "timestamp" else column for column in COLUMNS
)

_LOOKUP_BY_KEY = f"""
SELECT {_SELECT_COLUMNS}
FROM operations
WHERE (timestamp, trace_id, span_id) IN (
    SELECT timestamp, trace_id, span_id
    FROM format(TSV, 'timestamp DateTime64(9, \\'UTC\\'), trace_id String, span_id String', {{keys:String}})
)
"""

_LOOKUP_BY_TRACE = f"""
SELECT {_SELECT_COLUMNS}
FROM operations
WHERE timestamp >= fromUnixTimestamp64Nano({{start:Int64}}, 'UTC')
  AND timestamp <= fromUnixTimestamp64Nano({{end:Int64}}, 'UTC')
  AND trace_id IN (SELECT trace_id FROM format(TSV, 'trace_id String', {{traces:String}}))
"""


@dataclass(frozen=True)
class StoredState:
    """What the table holds for one span: its latest version and its live row, if any."""

    max_version: int
    current: Operation | None


class OperationStore:
    def __init__(self, database: Database):
        self.database = database

    def insert(self, rows: Sequence[Operation]) -> None:
        """One INSERT for all rows: never one per span."""
        if rows:
            self.database.client().insert("operations", rows, column_names=COLUMNS)

    def healthy(self) -> bool:
        """Whether the table can be reached (the batcher's probe while storage is down)."""
        try:
            return self.database.client().command("EXISTS TABLE operations") == 1
        except Exception:  # noqa: BLE001 - any failure means "not yet"
            self.database.discard_client()
            return False

    def lookup(self, keys: Iterable[tuple[int, str, str]]) -> dict[tuple[str, str], StoredState]:
        """Stored states of spans, by (start time ns, trace id, span id)."""
        lines = [f"{_seconds(ts)}\t{trace}\t{span}" for ts, trace, span in keys]
        if not lines:
            return {}
        result = self.database.client().query(_LOOKUP_BY_KEY, parameters={"keys": "\n".join(lines)})
        return _states(result.result_rows)

    def in_traces(self, trace_ids: Iterable[str], start_ns: int, end_ns: int) -> dict[tuple[str, str], StoredState]:
        """Stored states of the operations of some traces that started within a time range."""
        traces = "\n".join(sorted(set(trace_ids)))
        if not traces:
            return {}
        result = self.database.client().query(
            _LOOKUP_BY_TRACE, parameters={"traces": traces, "start": start_ns, "end": end_ns}
        )
        return _states(result.result_rows)


def _states(rows: Iterable[Sequence]) -> dict[tuple[str, str], StoredState]:
    """Collapse raw rows into states: a version whose signs sum to +1 is live."""
    by_key: dict[tuple[str, str], dict[int, list[Operation]]] = defaultdict(lambda: defaultdict(list))
    for raw in rows:
        row = Operation(*raw)
        by_key[row.key][row.version].append(row)
    states = {}
    for key, versions in by_key.items():
        live = None
        for version in sorted(versions):
            rows_of_version = versions[version]
            if sum(row.sign for row in rows_of_version) > 0:
                live = next(row for row in rows_of_version if row.sign > 0)
        states[key] = StoredState(max(versions), live)
    return states


def _seconds(ns: int) -> str:
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"
