"""What Python decides about one span: is it a model call, is it usable, what context does it carry.

The field mapping itself (provider, models, tokens, errors, remaining
attributes...) is done by ClickHouse from the span's bytes, with SQL that
clickhouse/mapping.py generates from the same alias tables
(`ingest.conventions`). Python keeps the decisions that need more than one
span or the service's configuration: which spans are operations, which are
rejected (partial success), the context keys, and whether a call reported
tokens (the nested-call rule).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from ingest import conventions as c
from ingest.codec import STATUS_ERROR, Attributes, SpanRecord
from ingest.config import ContextKeys, IngestConfig

# Accepted span start times: from 1971 to 2200. DateTime64(9) ends in 2262, and
# a span outside this range has a broken clock or a forged timestamp.
MIN_TIMESTAMP_NS = 31_536_000 * 10**9
MAX_TIMESTAMP_NS = 7_258_118_400 * 10**9

_HEX = frozenset("0123456789abcdef")
TOKEN_ALIASES = (c.INPUT_TOKENS, c.OUTPUT_TOKENS, c.TOTAL_TOKENS)
# Counts ClickHouse stores: whole numbers in [0, 1e18) (clickhouse/mapping.py `_count`).
MAX_COUNT = 1e18


class SpanRejected(ValueError):
    """An AI span that cannot be stored; counted in the export's partial success."""


# One per call: a msgspec Struct is built in C (see SpanRecord). Nothing changes
# it after it is built.
class ModelCall(msgspec.Struct, gc=False):
    """A span that records a model call, with what Python knows about it."""

    record: SpanRecord
    capability: str
    operation: str
    has_tokens: bool
    exception: tuple[str, str]
    # Its `operations` row as ClickHouse's mapping view would write it, from the
    # compiled pass (RowBinary, clickhouse/staging.py ROW_COLUMNS), or None:
    # the view maps it from the span's bytes.
    row: bytes | None = None


class Mapper:
    def __init__(self, config: IngestConfig, retention_days: int = 0):
        # Older spans would be dropped by the table TTL as they are inserted;
        # rejecting them says so to the client instead of acknowledging them.
        self.retention_ns = retention_days * 86_400 * 10**9
        self.context_keys = config.context_keys
        self.ignored_scopes = frozenset(config.ignored_scopes)
        self.context_key_list = tuple(sorted(config.context_keys.all_keys()))

    def oldest_start_ns(self) -> int:
        """Spans starting before this are past retention (0: no limit). Read once per export."""
        return time.time_ns() - self.retention_ns if self.retention_ns else 0

    def capability(self, record: SpanRecord) -> tuple[str, str] | None:
        """(capability, operation name) when the span is a model call, else None."""
        attributes = record.attributes
        for key in c.OPERATION_KEYS:
            if key not in attributes:
                continue
            value = attributes.get(key)
            name = value if isinstance(value, str) else str(value)
            capability = (
                c.MODEL_CALLS.get((key, name))
                or c.MODEL_CALLS.get((key, name.lower()))
                or c.MODEL_CALLS.get((key, name.upper()))
            )
            return (capability, name) if capability else None
        return None

    def is_ignored(self, record: SpanRecord) -> bool:
        return record.scope.name in self.ignored_scopes

    def context_values(self, attributes: Attributes | Mapping[str, Any]) -> dict[str, str]:
        """The configured context keys present on one span or resource, as strings."""
        if isinstance(attributes, Attributes):
            return attributes.texts(self.context_key_list)
        found = {}
        for key in self.context_key_list:
            value = attributes.get(key)
            if value is not None and value != "":
                found[key] = value if isinstance(value, str) else str(value)
        return found

    def model_call(self, record: SpanRecord, capability: str, operation: str, oldest_ns: int = 0) -> ModelCall:
        """The span as an operation to store; raises SpanRejected when it is unusable."""
        _validate(record, oldest_ns)
        attributes = record.attributes
        failed = record.status_code == STATUS_ERROR or c.ERROR_TYPE in attributes
        return ModelCall(
            record,
            capability,
            operation,
            _reports_tokens(attributes),
            record.exception() if failed else ("", ""),
        )


def resolve_context(
    keys: ContextKeys, spans: Iterable[Mapping[str, str]], resource: Mapping[str, Any]
) -> tuple[str, ...]:
    """Context fields in `CONTEXT_FIELDS` order.

    `spans` are context values of the span itself and then of its ancestors,
    nearest first; the resource comes last. For each field, keys are tried in
    priority order and, for each key, the span and then its ancestors: an
    Umbraco tag on an ancestor beats a generic user key on the span itself.
    """
    levels = [level for level in spans if level]
    if not levels and not resource:
        return keys.empty_context
    values = []
    for _, field_keys in keys.items():
        found = ""
        for key in field_keys:
            for level in levels:
                if key in level:
                    found = level[key]
                    break
            else:
                value = resource.get(key)
                if value is not None and value != "":
                    found = value if isinstance(value, str) else str(value)
            if found:
                break
        values.append(found)
    return tuple(values)


# Operation fields that context resolution fills, in ContextKeys order.
CONTEXT_FIELDS: tuple[str, ...] = tuple(name for name, _ in ContextKeys().items())


def _validate(record: SpanRecord, oldest_ns: int) -> None:
    problem = None
    if not _is_id(record.trace_id, 32):
        problem = "trace id must be 16 non-zero bytes"
    elif not _is_id(record.span_id, 16):
        problem = "span id must be 8 non-zero bytes"
    elif record.parent_span_id and not _is_id(record.parent_span_id, 16):
        problem = "parent span id must be empty or 8 bytes"
    elif not MIN_TIMESTAMP_NS <= record.start_ns <= MAX_TIMESTAMP_NS:
        problem = "start time is outside 1971-2200"
    elif record.end_ns < record.start_ns:
        problem = "end time is before start time"
    elif record.start_ns < oldest_ns:
        problem = "start time is older than the retention period"
    if problem:
        shown = record.span_id if _is_id(record.span_id, 16) else "?"
        raise SpanRejected(f"span {shown} ({record.name[:80]!r}): {problem}")


def _is_id(value: str, length: int) -> bool:
    return len(value) == length and value.strip("0") != "" and _HEX.issuperset(value)


def _reports_tokens(attributes: Attributes) -> bool:
    """Whether the stored row will have tokens: input, output or total, each the
    first usable count among its aliases, as the mapping view reads them
    (a row stores input + output + total, all three non-negative)."""
    for keys in TOKEN_ALIASES:
        for key in keys:
            if key in attributes:
                count = _count(attributes.get(key))
                if count is not None:
                    if count > 0:
                        return True
                    break
    return False


def _count(value: Any) -> float | None:
    """A token attribute's count as the mapping view reads it, else None (unusable: the view tries the next alias).

    The view reads the value's text with toFloat64OrNull, which takes ASCII
    digits only, with no surrounding space and no underscores (Python's float()
    takes all three), and keeps whole numbers in [0, 1e18).
    """
    if isinstance(value, bool) or value is None:
        return None  # the view reads a bool as 'true'/'false'
    if isinstance(value, str):
        if not value.isascii() or value.strip() != value or "_" in value:
            return None
        try:
            value = float(value)
        except ValueError:
            return None
    elif isinstance(value, int):
        value = float(value)
    elif not isinstance(value, float):
        return None
    return value if 0 <= value < MAX_COUNT and value.is_integer() else None
