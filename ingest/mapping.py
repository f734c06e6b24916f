"""Map one span to an operation row, exactly as docs/otel-ingest (the contract) says.

A span is an operation when its operation key names a model call
(`conventions.MODEL_CALLS`). Its context (profile, user, feature, entity) is
filled here from the span's own attributes and its resource; ancestors that
carry context are `ingest.context`'s job, which refines these rows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from ingest import conventions as c
from ingest.codec import STATUS_ERROR, SpanRecord
from ingest.config import ContextKeys, IngestConfig
from ingest.operation import Operation

# Accepted span start times: from 1971 to 2200. DateTime64(9) ends in 2262, and
# a span outside this range has a broken clock or a forged timestamp.
MIN_TIMESTAMP_NS = 31_536_000 * 10**9
MAX_TIMESTAMP_NS = 7_258_118_400 * 10**9

# Limits on what one row keeps of the attributes that have no column.
MAX_ATTRIBUTE_VALUE_CHARS = 16_384
MAX_ATTRIBUTES = 256

_HEX = frozenset("0123456789abcdef")


class SpanRejected(ValueError):
    """An AI span that cannot be stored; counted in the export's partial success."""


class Mapper:
    def __init__(self, config: IngestConfig, retention_days: int = 0):
        # Older spans would be dropped by the table TTL as they are inserted;
        # rejecting them says so to the client instead of acknowledging them.
        self.retention_ns = retention_days * 86_400 * 10**9
        self.context_keys = config.context_keys
        self.ignored_scopes = frozenset(config.ignored_scopes)
        self._context_key_set = config.context_keys.all_keys()

    def capability(self, record: SpanRecord) -> tuple[str, str] | None:
        """(capability, operation name) when the span is a model call, else None."""
        attributes = record.attributes
        for key in c.OPERATION_KEYS:
            value = attributes.get(key)
            if value is None:
                continue
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

    def context_values(self, attributes: Mapping[str, Any]) -> dict[str, str]:
        """The configured context keys present on one span or resource, as strings."""
        found = {}
        for key in self._context_key_set:
            value = attributes.get(key)
            if value is not None and value != "":
                found[key] = value if isinstance(value, str) else str(value)
        return found

    def oldest_start_ns(self) -> int:
        """Spans starting before this are past retention (0: no limit). Read once per export."""
        return time.time_ns() - self.retention_ns if self.retention_ns else 0

    def map(self, record: SpanRecord, capability: str, operation: str, oldest_ns: int = 0) -> Operation:
        """The first state (sign +1, version 1) of the operation a model-call span records."""
        _validate(record, oldest_ns)
        attributes = record.attributes
        used: list[str] = []

        provider_raw = _first_text(attributes, c.PROVIDER, used)
        request_model = _first_text(attributes, c.REQUEST_MODEL_BEFORE_INVOCATION, used)
        if not request_model:
            request_model = _invocation_model(attributes.get(c.INVOCATION_PARAMETERS))
        if not request_model:
            request_model = _first_text(attributes, c.REQUEST_MODEL_AFTER_INVOCATION, used)
        response_model = _first_text(attributes, c.RESPONSE_MODEL, used)

        input_tokens = _first_count(attributes, c.INPUT_TOKENS, used)
        output_tokens = _first_count(attributes, c.OUTPUT_TOKENS, used)
        total_tokens = _first_count(attributes, c.TOTAL_TOKENS, used)
        if total_tokens is None:
            total_tokens = (input_tokens or 0) + (output_tokens or 0)

        error_type = _text(attributes.get(c.ERROR_TYPE))
        failed = record.status_code == STATUS_ERROR or bool(error_type)
        error_message = ""
        if failed:
            exception_type, exception_message = record.exception or ("", "")
            error_type = error_type or exception_type
            error_message = record.status_message or exception_message

        streaming = _first_flag(attributes, c.STREAMING, used) or operation in c.STREAMING_OPERATIONS
        server_address = _server_host(_first_text(attributes, (c.SERVER_ADDRESS,), used))
        conversation_id = _first_text(attributes, c.CONVERSATION, used)

        context = resolve_context(self.context_keys, [self.context_values(attributes)], record.resource.attributes)
        used.extend(key for key in c.OPERATION_KEYS if key in attributes)
        used.append(c.ERROR_TYPE)

        return Operation(
            record.start_ns,
            record.trace_id,
            record.span_id,
            record.parent_span_id,
            1,
            1,
            record.resource.service_name,
            record.scope.name,
            record.scope.version,
            record.name,
            capability,
            operation,
            c.normalise_provider(provider_raw) if provider_raw else "",
            provider_raw,
            request_model,
            response_model,
            *context,
            input_tokens or 0,
            output_tokens or 0,
            total_tokens,
            _first_count(attributes, c.CACHE_READ_TOKENS, used) or 0,
            _first_count(attributes, c.CACHE_WRITE_TOKENS, used) or 0,
            _first_count(attributes, c.REASONING_TOKENS, used) or 0,
            record.end_ns - record.start_ns,
            not failed,
            error_type,
            error_message,
            streaming,
            conversation_id,
            server_address,
            remaining_attributes(attributes, used),
        )


def resolve_context(
    keys: ContextKeys, spans: Iterable[Mapping[str, str]], resource: Mapping[str, Any]
) -> tuple[str, ...]:
    """Context fields in `Operation.CONTEXT_FIELDS` order.

    `spans` are context values of the span itself and then of its ancestors,
    nearest first; the resource comes last. For each field, keys are tried in
    priority order and, for each key, the span and then its ancestors: an
    Umbraco tag on an ancestor beats a generic user key on the span itself.
    """
    levels = list(spans)
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


def remaining_attributes(attributes: Mapping[str, Any], used: list[str]) -> dict[str, str]:
    """Attributes without a column, as strings, within the per-row limits."""
    skip = set(used)
    kept: dict[str, str] = {}
    for key, value in attributes.items():
        if key in skip or value is None:
            continue
        if len(kept) >= MAX_ATTRIBUTES:
            break
        text = value if isinstance(value, str) else _stringify(value)
        if len(text) > MAX_ATTRIBUTE_VALUE_CHARS:
            text = text[:MAX_ATTRIBUTE_VALUE_CHARS] + "…"
        kept[key] = text
    return kept


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


def _first_text(attributes: Mapping[str, Any], keys: tuple[str, ...], used: list[str]) -> str:
    for key in keys:
        value = attributes.get(key)
        if value is not None and value != "":
            used.append(key)
            return value if isinstance(value, str) else _stringify(value)
    return ""


def _first_count(attributes: Mapping[str, Any], keys: tuple[str, ...], used: list[str]) -> int | None:
    """The first key with a usable count; negative or unparseable means unknown."""
    for key in keys:
        if key in attributes:
            used.append(key)
            count = parse_count(attributes[key])
            if count is not None:
                return count
    return None


def parse_count(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float):
        return int(value) if value >= 0 and value.is_integer() else None
    if isinstance(value, str):
        try:
            number = float(value) if ("." in value or "e" in value.lower()) else int(value)
        except ValueError:
            return None
        return parse_count(number)
    return None


def _first_flag(attributes: Mapping[str, Any], keys: tuple[str, ...], used: list[str]) -> bool:
    for key in keys:
        value = attributes.get(key)
        if value is None:
            continue
        used.append(key)
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)):
            return value != 0
        return str(value).strip().lower() in ("true", "1", "yes")
    return False


def _invocation_model(value: Any) -> str:
    """The `model` field of OpenInference's invocation-parameters JSON, if any."""
    if isinstance(value, str) and value:
        try:
            value = json.loads(value)
        except ValueError:
            return ""
    if isinstance(value, dict):
        model = value.get("model") or value.get("model_name")
        if isinstance(model, str):
            return model
    return ""


def _server_host(address: str) -> str:
    # Semantic Kernel writes a whole endpoint URL here.
    if "://" in address:
        try:
            return urlsplit(address).hostname or address
        except ValueError:
            return address
    return address


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else _stringify(value)


def _stringify(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)
