"""OTLP spans for tests, built as protobuf messages (the bytes an exporter sends)."""

from __future__ import annotations

import itertools
import os
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

START = 1_735_689_600_000_000_000  # 2025-01-01T00:00:00Z
_ids = itertools.count(1)


def new_trace() -> str:
    return os.urandom(16).hex()


def span_id() -> str:
    return f"{next(_ids):04x}{os.urandom(6).hex()}"


def any_value(value: Any) -> AnyValue:
    result = AnyValue()
    if isinstance(value, bool):
        result.bool_value = value
    elif isinstance(value, int):
        result.int_value = value
    elif isinstance(value, float):
        result.double_value = value
    elif isinstance(value, str):
        result.string_value = value
    elif isinstance(value, bytes):
        result.bytes_value = value
    elif isinstance(value, (list, tuple)):
        result.array_value.values.extend(any_value(item) for item in value)
    elif isinstance(value, dict):
        for key, item in value.items():
            result.kvlist_value.values.add(key=key).value.CopyFrom(any_value(item))
    return result


def span(
    attributes: dict | None = None,
    *,
    trace: str,
    span: str | None = None,
    parent: str = "",
    name: str = "span",
    start: int = START,
    duration: int = 1_000_000,
    status_code: int = 0,
    status_message: str = "",
    exception: tuple[str, str] | None = None,
) -> Span:
    """A span; ids are hex strings, the way the service stores them."""
    message = Span(
        trace_id=bytes.fromhex(trace) if trace else b"",
        span_id=bytes.fromhex(span or span_id()) if span != "" else b"",
        parent_span_id=bytes.fromhex(parent) if parent else b"",
        name=name,
        start_time_unix_nano=start,
        end_time_unix_nano=max(start + duration, 0),
    )
    for key, value in (attributes or {}).items():
        message.attributes.add(key=key).value.CopyFrom(any_value(value))
    message.status.code = status_code
    message.status.message = status_message
    if exception:
        event = message.events.add(name="exception", time_unix_nano=start)
        event.attributes.add(key="exception.type").value.string_value = exception[0]
        event.attributes.add(key="exception.message").value.string_value = exception[1]
    return message


def request(*spans: Span, resource: dict | None = None, scope: str = "tests") -> bytes:
    """One export request holding `spans` under one resource and scope, serialised."""
    return export_message(*spans, resource=resource, scope=scope).SerializeToString()


def export_message(
    *spans: Span, resource: dict | None = None, scope: str = "tests", service: str = "svc"
) -> ExportTraceServiceRequest:
    """One export request holding `spans` under one resource and scope."""
    message = ExportTraceServiceRequest()
    resource_spans = message.resource_spans.add()
    for key, value in (resource or {"service.name": service}).items():
        resource_spans.resource.attributes.add(key=key).value.CopyFrom(any_value(value))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = scope
    scope_spans.scope.version = "1.0"
    scope_spans.spans.extend(spans)
    return message


def hex_id(raw: bytes) -> str:
    return raw.hex()
