"""An in-memory store for unit tests of the pipeline: records every inserted row.

Looks rows up with the same meaning as clickhouse.operations (a version whose
signs sum to +1 is live). Integration tests run the real store.
"""

from __future__ import annotations

from clickhouse.operations import _states
from ingest.operation import Operation


class RecordingStore:
    def __init__(self):
        self.rows: list[Operation] = []
        self.inserts = 0
        self.down = False

    def insert(self, rows):
        if self.down:
            raise ConnectionError("storage is down")
        if rows:
            self.inserts += 1
            self.rows.extend(rows)

    def lookup(self, keys):
        if self.down:
            raise ConnectionError("storage is down")
        wanted = {(trace, span) for _, trace, span in keys}
        return _states(tuple(r) for r in self.rows if r.key in wanted)

    def in_traces(self, trace_ids, start_ns, end_ns):
        return _states(tuple(r) for r in self.rows if r.trace_id in trace_ids and start_ns <= r.timestamp_ns <= end_ns)

    def healthy(self):
        return not self.down

    def live(self) -> dict[tuple[str, str], Operation]:
        return {key: state.current for key, state in _states(tuple(r) for r in self.rows).items() if state.current}

    def net(self, column: str) -> int:
        return sum(row.sign * getattr(row, column) for row in self.rows)

    def count(self) -> int:
        return sum(row.sign for row in self.rows)
