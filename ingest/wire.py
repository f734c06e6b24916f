"""Alternative protobuf views of an OTLP ExportTraceServiceRequest, for speed.

Protobuf decodes by field number, so a message declared with the same
numbers but other types reads the same bytes differently:

- `RawRequest` declares resources, scopes and spans as `bytes`: decoding it
  yields each span's exact bytes, which the writer hands to ClickHouse as
  they are (ClickHouse maps their attributes; see clickhouse/mapping.py).
- `SpanView` declares `attributes` (field 9, repeated KeyValue{key=1,
  value=2}) as `map<string, AnyValue>`, the same wire format: looking up the
  handful of keys Python needs is then a C-level map access instead of a
  Python loop over every attribute. Events stay bytes until a failed span
  needs its exception event.
- `RequestView` is the request with its spans as `SpanView`s (resources and
  scopes still bytes). Parsing the body twice, as `RawRequest` and as
  `RequestView`, and walking both in step costs less than parsing each span's
  bytes on their own: one parse and one arena for all spans instead of one
  per span, which also made freeing them cheaper.

These are built from descriptor protos at first use, like generated _pb2 code.
"""

from __future__ import annotations

from functools import cache

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from opentelemetry.proto.common.v1 import common_pb2  # noqa: F401 - registers AnyValue in the default pool

_F = descriptor_pb2.FieldDescriptorProto
_PACKAGE = "ai_usage.wire"
_ANY_VALUE = ".opentelemetry.proto.common.v1.AnyValue"


def _field(message, name: str, number: int, kind: int, repeated: bool = False, type_name: str | None = None) -> None:
    field = message.field.add(
        name=name, number=number, type=kind, label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
    )
    if type_name:
        field.type_name = type_name


def _attribute_map(message) -> None:
    entry = message.nested_type.add(name="AttributesEntry")
    entry.options.map_entry = True
    _field(entry, "key", 1, _F.TYPE_STRING)
    _field(entry, "value", 2, _F.TYPE_MESSAGE, type_name=_ANY_VALUE)


@cache
def _classes() -> dict[str, type]:
    file = descriptor_pb2.FileDescriptorProto(
        name="ai_usage/wire.proto",
        package=_PACKAGE,
        syntax="proto3",
        dependency=["opentelemetry/proto/common/v1/common.proto"],
    )
    scope_spans = file.message_type.add(name="RawScopeSpans")
    _field(scope_spans, "scope", 1, _F.TYPE_BYTES)
    _field(scope_spans, "spans", 2, _F.TYPE_BYTES, repeated=True)
    resource_spans = file.message_type.add(name="RawResourceSpans")
    _field(resource_spans, "resource", 1, _F.TYPE_BYTES)
    _field(resource_spans, "scope_spans", 2, _F.TYPE_MESSAGE, repeated=True, type_name=f".{_PACKAGE}.RawScopeSpans")
    request = file.message_type.add(name="RawRequest")
    _field(request, "resource_spans", 1, _F.TYPE_MESSAGE, repeated=True, type_name=f".{_PACKAGE}.RawResourceSpans")

    scope_spans_view = file.message_type.add(name="ScopeSpansView")
    _field(scope_spans_view, "scope", 1, _F.TYPE_BYTES)
    _field(scope_spans_view, "spans", 2, _F.TYPE_MESSAGE, repeated=True, type_name=f".{_PACKAGE}.SpanView")
    resource_spans_view = file.message_type.add(name="ResourceSpansView")
    _field(resource_spans_view, "resource", 1, _F.TYPE_BYTES)
    _field(resource_spans_view, "scope_spans", 2, _F.TYPE_MESSAGE, repeated=True, type_name=f".{_PACKAGE}.ScopeSpansView")
    request_view = file.message_type.add(name="RequestView")
    _field(request_view, "resource_spans", 1, _F.TYPE_MESSAGE, repeated=True, type_name=f".{_PACKAGE}.ResourceSpansView")

    resource = file.message_type.add(name="ResourceView")
    _attribute_map(resource)
    _field(resource, "attributes", 1, _F.TYPE_MESSAGE, repeated=True, type_name=f".{_PACKAGE}.ResourceView.AttributesEntry")

    scope = file.message_type.add(name="ScopeView")
    _field(scope, "name", 1, _F.TYPE_STRING)
    _field(scope, "version", 2, _F.TYPE_STRING)

    status = file.message_type.add(name="StatusView")
    _field(status, "message", 2, _F.TYPE_STRING)
    _field(status, "code", 3, _F.TYPE_INT32)

    span = file.message_type.add(name="SpanView")
    _attribute_map(span)
    _field(span, "trace_id", 1, _F.TYPE_BYTES)
    _field(span, "span_id", 2, _F.TYPE_BYTES)
    _field(span, "parent_span_id", 4, _F.TYPE_BYTES)
    _field(span, "name", 5, _F.TYPE_STRING)
    _field(span, "start_time_unix_nano", 7, _F.TYPE_FIXED64)
    _field(span, "end_time_unix_nano", 8, _F.TYPE_FIXED64)
    _field(span, "attributes", 9, _F.TYPE_MESSAGE, repeated=True, type_name=f".{_PACKAGE}.SpanView.AttributesEntry")
    _field(span, "events", 11, _F.TYPE_BYTES, repeated=True)
    _field(span, "status", 15, _F.TYPE_MESSAGE, type_name=f".{_PACKAGE}.StatusView")

    event = file.message_type.add(name="EventView")
    _attribute_map(event)
    _field(event, "name", 2, _F.TYPE_STRING)
    _field(event, "attributes", 3, _F.TYPE_MESSAGE, repeated=True, type_name=f".{_PACKAGE}.EventView.AttributesEntry")

    pool = descriptor_pool.Default()
    pool.Add(file)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
        for name in ("RawRequest", "RequestView", "ResourceView", "ScopeView", "EventView")
    }


def raw_request():
    return _classes()["RawRequest"]


def request_view():
    return _classes()["RequestView"]


def resource_view():
    return _classes()["ResourceView"]


def scope_view():
    return _classes()["ScopeView"]


def event_view():
    return _classes()["EventView"]
