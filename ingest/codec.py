"""OTLP trace bodies in, OTLP replies out: protobuf and JSON, keyed by media type.

Both encodings decode into the same plain records (`SpanRecord`), so nothing
after this module knows which encoding an export used. JSON takes a fast path
through `json.loads` and plain dict access: OTLP/JSON differs from proto3 JSON
(hex ids, integer enums) and `google.protobuf.json_format` is about 15 times
slower on it.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from ingest.errors import MalformedRequest, UnsupportedMediaType

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_MEDIA_TYPES = {PROTOBUF: PROTOBUF, "application/protobuf": PROTOBUF, JSON: JSON}

# Attribute values nested deeper than this are cut (a hostile body could nest
# arrays thousands deep); no emitter nests more than two or three levels.
MAX_VALUE_DEPTH = 8

STATUS_ERROR = 2
_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


class Resource:
    __slots__ = ("attributes", "service_name")

    def __init__(self, attributes: dict[str, Any]):
        self.attributes = attributes
        name = attributes.get("service.name")
        self.service_name = name if isinstance(name, str) else ""


class Scope:
    __slots__ = ("name", "version")

    def __init__(self, name: str, version: str):
        self.name = name
        self.version = version


class SpanRecord:
    """One span as the mapper needs it. Ids are lower-case hex ('' when absent)."""

    __slots__ = (
        "trace_id",
        "span_id",
        "parent_span_id",
        "name",
        "start_ns",
        "end_ns",
        "status_code",
        "status_message",
        "attributes",
        "exception",
        "resource",
        "scope",
    )

    def __init__(
        self,
        trace_id: str,
        span_id: str,
        parent_span_id: str,
        name: str,
        start_ns: int,
        end_ns: int,
        status_code: int,
        status_message: str,
        attributes: dict[str, Any],
        exception: tuple[str, str] | None,
        resource: Resource,
        scope: Scope,
    ):
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_span_id = parent_span_id
        self.name = name
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.status_code = status_code
        self.status_message = status_message
        self.attributes = attributes
        self.exception = exception
        self.resource = resource
        self.scope = scope

    def __repr__(self) -> str:
        return f"SpanRecord({self.name!r}, trace={self.trace_id}, span={self.span_id})"


def media_type(content_type: str | None) -> str:
    """The supported media type named by a Content-Type header, parameters ignored."""
    base = (content_type or "").split(";", 1)[0].strip().lower()
    try:
        return _MEDIA_TYPES[base]
    except KeyError:
        shown = base or "none"
        raise UnsupportedMediaType(
            f"unsupported content type {shown!r}: send application/x-protobuf or application/json"
        ) from None


def decode(body: bytes, media: str) -> list[SpanRecord]:
    return decode_protobuf(body) if media == PROTOBUF else decode_json(body)


# --- protobuf ---------------------------------------------------------------


def decode_protobuf(body: bytes) -> list[SpanRecord]:
    try:
        request = ExportTraceServiceRequest.FromString(body)
    except (DecodeError, RecursionError) as error:
        raise MalformedRequest(f"body is not a valid OTLP protobuf ExportTraceServiceRequest: {error}") from None
    return spans_from_message(request)


def spans_from_message(request: ExportTraceServiceRequest) -> list[SpanRecord]:
    """Records from a parsed request (the gRPC receiver gets one already parsed)."""
    records = []
    append = records.append
    for resource_spans in request.resource_spans:
        resource = Resource(_proto_attributes(resource_spans.resource.attributes))
        for scope_spans in resource_spans.scope_spans:
            scope = Scope(scope_spans.scope.name, scope_spans.scope.version)
            for span in scope_spans.spans:
                exception = None
                for event in span.events:
                    if event.name == "exception":
                        exception = _exception(_proto_attributes(event.attributes))
                        break
                status = span.status
                append(
                    SpanRecord(
                        span.trace_id.hex(),
                        span.span_id.hex(),
                        span.parent_span_id.hex(),
                        span.name,
                        span.start_time_unix_nano,
                        span.end_time_unix_nano,
                        status.code,
                        status.message,
                        _proto_attributes(span.attributes),
                        exception,
                        resource,
                        scope,
                    )
                )
    return records


def _proto_attributes(attributes: Any) -> dict[str, Any]:
    return {kv.key: _proto_value(kv.value, 0) for kv in attributes}


def _proto_value(value: Any, depth: int) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bool_value":
        return value.bool_value
    if kind is None:
        return None
    if depth >= MAX_VALUE_DEPTH:
        return "…"
    if kind == "array_value":
        return [_proto_value(item, depth + 1) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _proto_value(kv.value, depth + 1) for kv in value.kvlist_value.values}
    return base64.b64encode(value.bytes_value).decode("ascii")


# --- JSON -------------------------------------------------------------------


def decode_json(body: bytes) -> list[SpanRecord]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as error:
        # ValueError covers UnicodeDecodeError (invalid UTF-8) and JSONDecodeError.
        raise MalformedRequest(f"body is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise MalformedRequest("an OTLP/JSON body must be an object with a resourceSpans array")
    records: list[SpanRecord] = []
    for i, resource_spans in enumerate(_list(document, "resourceSpans", "resource_spans", "body")):
        where = f"resourceSpans[{i}]"
        try:
            resource = Resource(_json_attributes(_object(resource_spans, "resource")))
        except (TypeError, ValueError, AttributeError, RecursionError) as error:
            raise MalformedRequest(f"{where}.resource: {error}") from None
        for j, scope_spans in enumerate(_list(resource_spans, "scopeSpans", "scope_spans", where)):
            scope_where = f"{where}.scopeSpans[{j}]"
            try:
                scope_doc = _object(scope_spans, "scope")
                scope = Scope(_str(scope_doc.get("name")), _str(scope_doc.get("version")))
                spans = _list(scope_spans, "spans", "spans", scope_where)
            except (TypeError, ValueError, AttributeError) as error:
                raise MalformedRequest(f"{scope_where}.scope: {error}") from None
            for k, span in enumerate(spans):
                try:
                    records.append(_json_span(span, resource, scope))
                except (TypeError, ValueError, AttributeError, RecursionError) as error:
                    raise MalformedRequest(f"{scope_where}.spans[{k}]: {error}") from None
    return records


def _json_span(span: Any, resource: Resource, scope: Scope) -> SpanRecord:
    if not isinstance(span, dict):
        raise TypeError("a span must be an object")
    get = span.get
    exception = None
    for event in _opt_list(get("events")):
        if isinstance(event, dict) and event.get("name") == "exception":
            exception = _exception(_json_attributes(event))
            break
    status = get("status") or {}
    if not isinstance(status, dict):
        raise TypeError("status must be an object")
    return SpanRecord(
        _json_id(_first(get, "traceId", "trace_id"), "traceId"),
        _json_id(_first(get, "spanId", "span_id"), "spanId"),
        _json_id(_first(get, "parentSpanId", "parent_span_id"), "parentSpanId"),
        _str(get("name")),
        _json_int(_first(get, "startTimeUnixNano", "start_time_unix_nano"), "startTimeUnixNano"),
        _json_int(_first(get, "endTimeUnixNano", "end_time_unix_nano"), "endTimeUnixNano"),
        _json_enum(status.get("code"), _STATUS_NAMES, "status.code"),
        _str(status.get("message")),
        _json_attributes(span),
        exception,
        resource,
        scope,
    )


def _json_attributes(holder: dict[str, Any]) -> dict[str, Any]:
    attributes = {}
    for kv in _opt_list(holder.get("attributes")):
        if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
            raise TypeError("an attribute must be an object with a string key")
        attributes[kv["key"]] = _json_value(kv.get("value"), 0)
    return attributes


def _json_value(value: Any, depth: int) -> Any:
    if not isinstance(value, dict) or not value:
        return None
    if "stringValue" in value:
        return _str(value["stringValue"])
    if "intValue" in value:
        return _json_int(value["intValue"], "intValue")
    if "doubleValue" in value:
        number = value["doubleValue"]
        return float(number) if isinstance(number, (int, float, str)) else _type_error("doubleValue", number)
    if "boolValue" in value:
        flag = value["boolValue"]
        return flag if isinstance(flag, bool) else _type_error("boolValue", flag)
    if depth >= MAX_VALUE_DEPTH:
        return "…"
    for key in ("arrayValue", "array_value"):
        if key in value:
            return [_json_value(item, depth + 1) for item in _opt_list((value[key] or {}).get("values"))]
    for key in ("kvlistValue", "kvlist_value"):
        if key in value:
            pairs = _opt_list((value[key] or {}).get("values"))
            return {_str(kv.get("key")): _json_value(kv.get("value"), depth + 1) for kv in pairs if isinstance(kv, dict)}
    for key in ("bytesValue", "bytes_value"):
        if key in value:
            return _str(value[key])
    # snake_case spellings of the scalar kinds
    for key, kind in (("string_value", "stringValue"), ("int_value", "intValue"), ("double_value", "doubleValue"), ("bool_value", "boolValue")):
        if key in value:
            return _json_value({kind: value[key]}, depth)
    return None


def _exception(attributes: dict[str, Any]) -> tuple[str, str]:
    return (_text(attributes.get("exception.type")), _text(attributes.get("exception.message")))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def _first(get: Any, camel: str, snake: str) -> Any:
    value = get(camel)
    return get(snake) if value is None else value


def _object(holder: Any, key: str) -> dict[str, Any]:
    if not isinstance(holder, dict):
        raise TypeError("expected an object")
    value = holder.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"{key} must be an object")
    return value


def _list(holder: Any, camel: str, snake: str, where: str) -> list[Any]:
    if not isinstance(holder, dict):
        raise MalformedRequest(f"{where}: expected an object")
    value = holder.get(camel, holder.get(snake))
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedRequest(f"{where}.{camel} must be an array")
    return value


def _opt_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise TypeError("expected an array")
    return value


def _str(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _json_int(value: Any, field: str) -> int:
    # OTLP/JSON writes 64-bit integers as decimal strings; numbers are accepted too.
    if value is None:
        return 0
    if isinstance(value, bool):
        _type_error(field, value)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{field} must be an integer, got {value[:40]!r}") from None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return _type_error(field, value)


def _json_enum(value: Any, names: dict[str, int], field: str) -> int:
    if isinstance(value, str) and value in names:
        return names[value]
    return _json_int(value, field)


def _json_id(value: Any, field: str) -> str:
    """OTLP/JSON ids are hex; a base64 id (proto3 JSON) is accepted and converted."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        _type_error(field, value)
    lowered = value.lower()
    if len(lowered) in (16, 32) and all(c in "0123456789abcdef" for c in lowered):
        return lowered
    try:
        return base64.b64decode(value, validate=True).hex()
    except (binascii.Error, ValueError):
        # Kept as given; the mapper rejects ids of the wrong shape.
        return lowered


def _type_error(field: str, value: Any) -> Any:
    raise TypeError(f"{field} has the wrong type ({type(value).__name__})")


# --- replies ----------------------------------------------------------------


def encode_response(media: str, rejected: int = 0, message: str = "") -> bytes:
    """An ExportTraceServiceResponse, with partial_success when spans were rejected."""
    if media == PROTOBUF:
        response = ExportTraceServiceResponse()
        if rejected:
            response.partial_success.rejected_spans = rejected
            response.partial_success.error_message = message
        return response.SerializeToString()
    if not rejected:
        return b"{}"
    # int64 as a decimal string, as OTLP/JSON writes it.
    return json.dumps({"partialSuccess": {"rejectedSpans": str(rejected), "errorMessage": message}}).encode()


def encode_status(media: str, code: int, message: str) -> bytes:
    """A google.rpc.Status body, as OTLP/HTTP answers errors."""
    if media == PROTOBUF:
        return status_pb2.Status(code=code, message=message).SerializeToString()
    return json.dumps({"code": code, "message": message}).encode()
