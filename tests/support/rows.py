"""Whole `operations` rows for tests that write the table directly (the ingester
stages spans instead and lets ClickHouse map them).

Field names are the column names of `clickhouse/migrations/0001_operations.sql`.
"""

from __future__ import annotations

from typing import NamedTuple


class Operation(NamedTuple):
    timestamp_ns: int
    trace_id: str
    span_id: str
    parent_span_id: str
    sign: int
    version: int
    service_name: str
    scope_name: str
    scope_version: str
    span_name: str
    capability: str
    operation: str
    provider: str
    provider_raw: str
    request_model: str
    response_model: str
    profile_id: str
    profile_alias: str
    user_id: str
    user_name: str
    feature_type: str
    feature_id: str
    entity_id: str
    entity_type: str
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    duration_ns: int
    succeeded: bool
    error_type: str
    error_message: str
    streaming: bool
    conversation_id: str
    server_address: str
    attributes: dict[str, str]

    @property
    def key(self) -> tuple[str, str]:
        return (self.trace_id, self.span_id)

    @property
    def has_tokens(self) -> bool:
        return bool(self.input_tokens or self.output_tokens or self.total_tokens)

    def cancelled(self) -> Operation:
        """The row that cancels this state (same key and version, sign -1)."""
        return self._replace(sign=-1)


# Column names as stored; `timestamp_ns` goes into the `timestamp` column.
COLUMNS: tuple[str, ...] = ("timestamp",) + Operation._fields[1:]


def insert_rows(database, rows) -> None:
    """One insert of whole rows into `operations` (its view keeps usage_hourly in step)."""
    database.client().insert("operations", rows, column_names=COLUMNS)
