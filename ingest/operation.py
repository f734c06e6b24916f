"""The boundary between mapping and writing: one stored state of an AI model call.

A NamedTuple because rows are created at ingest rates (cheap to build, and a
row is already the tuple that the ClickHouse insert takes, in column order).
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

    def context(self) -> tuple[str, ...]:
        return tuple(getattr(self, name) for name in CONTEXT_FIELDS)

    def cancelled(self) -> Operation:
        """The row that cancels this state (same key and version, sign -1)."""
        return self._replace(sign=-1)


# Operation fields that context resolution fills (see ingest/context.py).
CONTEXT_FIELDS: tuple[str, ...] = (
    "profile_id",
    "profile_alias",
    "user_id",
    "user_name",
    "feature_type",
    "feature_id",
    "entity_id",
    "entity_type",
)

# Column names as stored; `timestamp_ns` goes into the `timestamp` column.
COLUMNS: tuple[str, ...] = ("timestamp",) + Operation._fields[1:]
