"""OTLP trace bodies in, OTLP replies out: protobuf and JSON, keyed by media type.

Both encodings decode into the same records (`SpanRecord`): the few facts the
pipeline decides on (ids, times, status, and an attribute reader for the keys
it needs) plus the span's `payload` for ClickHouse, which maps everything
else (see clickhouse/incoming_span.proto):
- protobuf: the span's exact bytes, cut out of the request by `ingest.wire`'s
  views, never re-encoded;
- JSON: the span's name, status and attributes in the one shape ClickHouse
  parses, written as JSONEachRow. OTLP/JSON differs from proto3 JSON (hex
  ids, integer enums), so json_format does not fit. A body in the form
  exporters write is decoded in one typed pass by msgspec (`_decode_canonical`);
  any other is parsed with orjson and checked value by value.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from functools import lru_cache
from typing import Annotated, Any

import msgspec
import orjson
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.proto.resource.v1 import resource_pb2

from ingest import wire
from ingest.conventions import SERVICE_NAME
from ingest.errors import MalformedRequest, UnsupportedMediaType

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_MEDIA_TYPES = {PROTOBUF: PROTOBUF, "application/protobuf": PROTOBUF, JSON: JSON}

STATUS_ERROR = 2
_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
_SCALARS = ("stringValue", "boolValue", "intValue", "doubleValue")
_SNAKE = {
    "string_value": "stringValue",
    "bool_value": "boolValue",
    "int_value": "intValue",
    "double_value": "doubleValue",
    "array_value": "arrayValue",
    "kvlist_value": "kvlistValue",
    "bytes_value": "bytesValue",
}


class Resource:
    """A span's resource: its attributes for Python, and for ClickHouse only the
    `service.name` attribute (the one it maps), so the resource's other
    attributes are not sent and parsed again with every span."""

    __slots__ = ("attributes", "payload")

    def __init__(self, attributes: Attributes, payload: bytes | dict):
        self.attributes = attributes
        self.payload = payload


class Scope:
    __slots__ = ("name", "version", "payload")

    def __init__(self, name: str, version: str, payload: bytes | dict):
        self.name = name
        self.version = version
        self.payload = payload


# A msgspec Struct: built in C (a quarter of the cost of a slotted class's
# Python __init__), one per span on the hot path; gc=False because a record
# never refers back to anything that refers to it.
class SpanRecord(msgspec.Struct, gc=False):
    """One span: what the pipeline decides on, and `payload` for ClickHouse. Ids are lower-case hex."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    start_ns: int
    end_ns: int
    status_code: int
    attributes: Attributes
    events: Any
    resource: Resource
    scope: Scope
    # protobuf: the span's bytes; JSON: a dict, or the canonical path's encoded JSON
    payload: bytes | dict | orjson.Fragment

    def exception(self) -> tuple[str, str]:
        """(type, message) of the span's first readable exception event, or empty strings.

        Events are not decoded with the request (only a failed call reads
        them), so one that turns out malformed is skipped here rather than
        failing the export: the call is stored without its exception details.
        """
        for event in self.events:
            try:
                if isinstance(event, bytes):
                    view = wire.event_view().FromString(event)
                    if view.name == "exception":
                        attributes = ProtoAttributes(view.attributes)
                        return _text(attributes.get("exception.type")), _text(attributes.get("exception.message"))
                elif isinstance(event, dict) and event.get("name") == "exception":
                    attributes = JsonAttributes(_json_attributes(event.get("attributes"))[0])
                    return _text(attributes.get("exception.type")), _text(attributes.get("exception.message"))
                elif isinstance(event, _Event) and event.name == "exception":
                    attributes = CanonicalAttributes({kv.key: kv.value for kv in event.attributes})
                    return _text(attributes.get("exception.type")), _text(attributes.get("exception.message"))
            except (DecodeError, RecursionError, TypeError, ValueError):
                continue
        return "", ""

    def __repr__(self) -> str:
        return f"SpanRecord({self.name!r}, trace={self.trace_id}, span={self.span_id})"


class Attributes:
    """Reads single attributes as Python values: str, int, float, bool, or a JSON text for arrays and lists."""

    __slots__ = ("_values",)

    def __init__(self, values: Any):
        self._values = values

    def __contains__(self, key: str) -> bool:
        return key in self._values

    def present(self, keys: Iterable[str]) -> list[str]:
        """Those of `keys` that are set, in their order (one call for a whole key list)."""
        values = self._values
        return [key for key in keys if key in values]

    def get(self, key: str) -> Any:
        raise NotImplementedError

    # The member of a stored value that holds a string value: `texts` reads it
    # directly, without a get(), for a string (nearly every context value).
    _string_member: str | None = None

    def texts(self, keys: Iterable[str]) -> dict[str, str]:
        """The non-empty values of those of `keys` that are set, as text (context values)."""
        values, member = self._values, self._string_member
        found = {}
        for key in keys:
            if key in values:
                text = getattr(values[key], member) if member else None
                if type(text) is not str or not text:
                    value = self.get(key)
                    if value is None or value == "":
                        continue
                    text = value if isinstance(value, str) else str(value)
                found[key] = text
        return found


class ProtoAttributes(Attributes):
    """Over a upb map of AnyValue messages."""

    __slots__ = ()
    _string_member = "string_value"

    def get(self, key: str) -> Any:
        value = self._values.get(key)
        if value is None:
            return None
        kind = value.WhichOneof("value")
        if kind in ("string_value", "int_value", "double_value", "bool_value"):
            return getattr(value, kind)
        if kind == "array_value":
            return json.dumps([_proto_scalar(item) for item in value.array_value.values])
        if kind == "kvlist_value":
            return json.dumps({kv.key: _proto_scalar(kv.value) for kv in value.kvlist_value.values})
        if kind == "bytes_value":
            return base64.b64encode(value.bytes_value).decode("ascii")
        return None


class JsonAttributes(Attributes):
    """Over a dict of OTLP/JSON AnyValue objects, already normalised."""

    __slots__ = ()

    def get(self, key: str) -> Any:
        value = self._values.get(key)
        if not value:
            return None
        for kind in _SCALARS:
            if kind in value:
                found = value[kind]
                return int(found) if kind == "intValue" and isinstance(found, str) else found
        if "arrayValue" in value:
            return json.dumps([_json_scalar(item) for item in value["arrayValue"]["values"]])
        if "kvlistValue" in value:
            return json.dumps({kv["key"]: _json_scalar(kv["value"]) for kv in value["kvlistValue"]["values"]})
        return None


def _proto_scalar(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind in ("string_value", "int_value", "double_value", "bool_value") else None


def _json_scalar(value: dict) -> Any:
    for kind in _SCALARS:
        if kind in value:
            return value[kind]
    return None


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


def resource_of(raw_resource: bytes) -> Resource:
    """A ResourceSpans' resource from its bytes (raises DecodeError)."""
    return Resource(ProtoAttributes(wire.resource_view().FromString(raw_resource).attributes), _service_only(raw_resource))


def scope_of(raw_scope: bytes) -> Scope:
    """A ScopeSpans' scope from its bytes (raises DecodeError)."""
    view = wire.scope_view().FromString(raw_scope)
    return Scope(view.name, view.version, raw_scope)


def decode_protobuf(body: bytes) -> list[SpanRecord]:
    records: list[SpanRecord] = []
    append = records.append
    try:
        # The same bytes twice: spans as bytes (for ClickHouse) and as views
        # (for Python); both have the same structure, so they are walked in step.
        raw_request, request = wire.raw_request().FromString(body), wire.request_view().FromString(body)
        for raw_resource_spans, resource_spans in zip(raw_request.resource_spans, request.resource_spans):
            resource = resource_of(resource_spans.resource)
            for raw_scope_spans, scope_spans in zip(raw_resource_spans.scope_spans, resource_spans.scope_spans):
                scope = scope_of(scope_spans.scope)
                for raw, span in zip(raw_scope_spans.spans, scope_spans.spans):
                    append(
                        SpanRecord(
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                            span.name,
                            span.start_time_unix_nano,
                            span.end_time_unix_nano,
                            span.status.code,
                            ProtoAttributes(span.attributes),
                            span.events,
                            resource,
                            scope,
                            raw,
                        )
                    )
    except (DecodeError, RecursionError) as error:
        raise MalformedRequest(f"body is not a valid OTLP protobuf ExportTraceServiceRequest: {error}") from None
    return records


@lru_cache(maxsize=256)
def _service_only(raw_resource: bytes) -> bytes:
    """The resource reduced to its first `service.name` attribute, exactly as sent.

    Cached: an application's exports repeat the same resource bytes."""
    for attribute in resource_pb2.Resource.FromString(raw_resource).attributes:
        if attribute.key == SERVICE_NAME:
            return resource_pb2.Resource(attributes=[attribute]).SerializeToString()
    return b""


# --- JSON -------------------------------------------------------------------


def decode_json(body: bytes) -> list[SpanRecord]:
    records = _decode_canonical(body)
    return records if records is not None else _decode_general(body)


def _decode_general(body: bytes) -> list[SpanRecord]:
    """Any OTLP/JSON body, in camelCase or snake_case, each value checked and normalised."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        # Also invalid UTF-8 and nesting past orjson's recursion limit.
        raise MalformedRequest(f"body is not valid JSON: {error}") from None
    if not isinstance(document, dict):
        raise MalformedRequest("an OTLP/JSON body must be an object with a resourceSpans array")
    records: list[SpanRecord] = []
    for i, resource_spans in enumerate(_list(document, "resourceSpans", "resource_spans", "body")):
        where = f"resourceSpans[{i}]"
        try:
            attributes, normalised = _json_attributes(_object(resource_spans, "resource").get("attributes"))
        except (TypeError, ValueError) as error:
            raise MalformedRequest(f"{where}.resource: {error}") from None
        service = next((kv for kv in normalised if kv["key"] == SERVICE_NAME), None)
        resource = Resource(JsonAttributes(attributes), {"attributes": [service] if service else []})
        for j, scope_spans in enumerate(_list(resource_spans, "scopeSpans", "scope_spans", where)):
            scope_where = f"{where}.scopeSpans[{j}]"
            try:
                scope_doc = _object(scope_spans, "scope")
                name, version = _str(scope_doc.get("name")), _str(scope_doc.get("version"))
            except (TypeError, ValueError) as error:
                raise MalformedRequest(f"{scope_where}.scope: {error}") from None
            scope = Scope(name, version, {"name": name, "version": version})
            for k, span in enumerate(_list(scope_spans, "spans", "spans", scope_where)):
                try:
                    records.append(_json_span(span, resource, scope))
                except (TypeError, ValueError) as error:
                    raise MalformedRequest(f"{scope_where}.spans[{k}]: {error}") from None
    return records


def _json_span(span: Any, resource: Resource, scope: Scope) -> SpanRecord:
    if not isinstance(span, dict):
        raise TypeError("a span must be an object")
    get = span.get
    status = get("status") or {}
    if not isinstance(status, dict):
        raise TypeError("status must be an object")
    status_code = _json_enum(status.get("code"), _STATUS_NAMES, "status.code")
    status_message = _str(status.get("message"))
    name = _str(get("name"))
    attributes, normalised = _json_attributes(get("attributes"))
    return SpanRecord(
        _json_id(_first(get, "traceId", "trace_id"), "traceId"),
        _json_id(_first(get, "spanId", "span_id"), "spanId"),
        _json_id(_first(get, "parentSpanId", "parent_span_id"), "parentSpanId"),
        name,
        _json_time(_first(get, "startTimeUnixNano", "start_time_unix_nano"), "startTimeUnixNano"),
        _json_time(_first(get, "endTimeUnixNano", "end_time_unix_nano"), "endTimeUnixNano"),
        status_code,
        JsonAttributes(attributes),
        _opt_list(get("events")),
        resource,
        scope,
        {"name": name, "attributes": normalised, "status": {"code": status_code, "message": status_message}},
    )


def _json_attributes(items: Any) -> tuple[dict[str, dict], list[dict]]:
    """Attributes by key, and the list in the exact shape ClickHouse parses.

    Values are checked here so that ClickHouse never refuses a row: a wrong
    type is this request's error (400), not a failure of the whole insert.
    """
    by_key: dict[str, dict] = {}
    normalised: list[dict] = []
    for kv in _opt_list(items):
        if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
            raise TypeError("an attribute must be an object with a string key")
        raw = kv.get("value")
        value = _json_value(raw, nested=False)
        by_key[kv["key"]] = value
        # An attribute already in the parsed shape is passed on as it is.
        normalised.append(kv if value is raw and len(kv) == 2 else {"key": kv["key"], "value": value})
    return by_key, normalised


def _json_value(value: Any, nested: bool) -> dict:
    """An AnyValue object with one correctly typed member (empty when unset)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError("an attribute value must be an object")
    # Most values are one string: already in the shape ClickHouse parses.
    if len(value) == 1:
        if type(value.get("stringValue")) is str:
            return value
        # OTLP/JSON writes integers as decimal strings, which ClickHouse reads
        # as they are: a short one of ASCII digits needs no conversion (nor a
        # new object), and every such string is within the 64-bit range.
        member = value.get("intValue")
        if type(member) is str and _short_digits(member):
            return value
    for key, member in value.items():
        kind = _SNAKE.get(key, key)
        if kind == "stringValue":
            return {kind: _str(member)}
        if kind == "boolValue":
            if not isinstance(member, bool):
                _type_error(kind, member)
            return {kind: member}
        if kind == "intValue":
            number = _json_int(member, kind)
            if not -(2**63) <= number < 2**63:
                raise ValueError("intValue is outside the 64-bit range")
            return {kind: number}
        if kind == "doubleValue":
            return {kind: _json_double(member)}
        if kind == "bytesValue":
            # Rendered as its base64 text, as protobuf bytes are.
            return {"stringValue": _str(member)}
        if kind in ("arrayValue", "kvlistValue"):
            if nested:
                return {}  # one level of nesting is kept
            entries = _opt_list((member or {}).get("values") if isinstance(member, dict) else _type_error(kind, member))
            if kind == "arrayValue":
                return {kind: {"values": [_json_value(item, nested=True) for item in entries]}}
            pairs = []
            for pair in entries:
                if not isinstance(pair, dict) or not isinstance(pair.get("key"), str):
                    raise TypeError("a kvlistValue entry must be an object with a string key")
                pairs.append({"key": pair["key"], "value": _json_value(pair.get("value"), nested=True)})
            return {kind: {"values": pairs}}
    return {}


def _json_double(value: Any) -> float | None:
    if isinstance(value, bool):
        _type_error("doubleValue", value)
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)  # proto3 JSON writes NaN and Infinity as strings
        except ValueError:
            raise ValueError(f"doubleValue must be a number, got {value[:40]!r}") from None
    else:
        return _type_error("doubleValue", value)
    return number if number == number and number not in (float("inf"), float("-inf")) else None


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


def _json_time(value: Any, field: str) -> int:
    """A fixed64 time: what protobuf can carry, so that no larger number reaches the writer or ClickHouse."""
    number = _json_int(value, field)
    if not 0 <= number < 2**64:
        raise ValueError(f"{field} must be an unsigned 64-bit integer, got {str(number)[:40]}")
    return number


def _json_enum(value: Any, names: dict[str, int], field: str) -> int:
    if isinstance(value, str) and value in names:
        return names[value]
    return _json_int(value, field)


_HEX = frozenset("0123456789abcdef")


def _json_id(value: Any, field: str) -> str:
    """OTLP/JSON ids are hex; a base64 id (proto3 JSON) is accepted and converted."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        _type_error(field, value)
    lowered = value.lower()
    if len(lowered) in (16, 32) and _HEX.issuperset(lowered):
        return lowered
    try:
        return base64.b64decode(value, validate=True).hex()
    except (binascii.Error, ValueError):
        # Kept as given; the mapper rejects ids of the wrong shape.
        return lowered


def _type_error(field: str, value: Any) -> Any:
    raise TypeError(f"{field} has the wrong type ({type(value).__name__})")


# --- JSON in the form exporters write ----------------------------------------
#
# OTLP/JSON exporters write one form: camelCase keys, one member per AnyValue,
# 64-bit integers as short decimal strings. msgspec decodes that form straight
# into the structs below, checking every value in C: half the cost of orjson
# plus `_json_attributes` (README, "What the ingest targets need"). The
# structs are strict: unknown keys, nulls, numbers out of range, two members in
# one AnyValue, and every value the general path would rewrite are refused. So
# a body they take is one the general path takes too, decoded to the same
# records (tests/unit/test_json_canonical.py compares the two); any other body
# goes to the general path, which decodes it or names its problem.

_INT64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]

_UNSET = msgspec.UNSET
_Unset = msgspec.UnsetType


def _short_digits(text: str) -> bool:
    """An intValue string that ClickHouse reads as it is: within the 64-bit range, ASCII digits only."""
    return len(text) < 19 and text.isascii() and (text.isdigit() or (text[:1] == "-" and text[1:].isdigit()))


def _check_members(value: _Scalar | _Value, others: int) -> None:
    # Raised inside msgspec's decode, which then refuses the body: the general path takes it.
    members = others + (value.stringValue is not _UNSET) + (value.boolValue is not _UNSET)
    members += (value.intValue is not _UNSET) + (value.doubleValue is not _UNSET)
    if members > 1:
        raise ValueError("more than one member in an AnyValue")
    if isinstance(value.intValue, str) and not _short_digits(value.intValue):
        raise ValueError("an intValue that the general path converts")


class _Scalar(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True, gc=False):
    """A value inside an arrayValue or kvlistValue: the general path keeps only scalars there."""

    stringValue: str | _Unset = _UNSET
    boolValue: bool | _Unset = _UNSET
    intValue: _INT64 | str | _Unset = _UNSET
    doubleValue: float | _Unset = _UNSET

    def __post_init__(self) -> None:
        _check_members(self, 0)


class _Array(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    values: list[_Scalar] = []


class _NestedKeyValue(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    key: str
    value: _Scalar = _Scalar()


class _KeyValueList(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    values: list[_NestedKeyValue] = []


class _Value(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True, gc=False):
    """An attribute's AnyValue. bytesValue is not here: the general path rewrites it as a string."""

    stringValue: str | _Unset = _UNSET
    boolValue: bool | _Unset = _UNSET
    intValue: _INT64 | str | _Unset = _UNSET
    doubleValue: float | _Unset = _UNSET
    arrayValue: _Array | _Unset = _UNSET
    kvlistValue: _KeyValueList | _Unset = _UNSET

    def __post_init__(self) -> None:
        # Run for every attribute: a string (nearly all of them) is checked inline.
        if self.stringValue is _UNSET:
            _check_members(self, (self.arrayValue is not _UNSET) + (self.kvlistValue is not _UNSET))
        elif (
            self.boolValue is not _UNSET or self.intValue is not _UNSET or self.doubleValue is not _UNSET
            or self.arrayValue is not _UNSET or self.kvlistValue is not _UNSET
        ):
            raise ValueError("more than one member in an AnyValue")


class _KeyValue(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    key: str
    value: _Value = _Value()


class _Event(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    timeUnixNano: int | str = 0
    name: str = ""
    attributes: list[_KeyValue] = []
    droppedAttributesCount: int = 0


class _Link(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    traceId: str = ""
    spanId: str = ""
    traceState: str = ""
    attributes: list[_KeyValue] = []
    droppedAttributesCount: int = 0
    flags: int = 0


class _Status(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    code: _INT64 | str = 0
    message: str = ""


class _Span(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    traceId: str = ""
    spanId: str = ""
    traceState: str = ""
    parentSpanId: str = ""
    flags: int = 0
    name: str = ""
    kind: _INT64 | str = 0
    startTimeUnixNano: int | str = 0
    endTimeUnixNano: int | str = 0
    attributes: list[_KeyValue] = []
    droppedAttributesCount: int = 0
    events: list[_Event] = []
    droppedEventsCount: int = 0
    links: list[_Link] = []
    droppedLinksCount: int = 0
    status: _Status = _Status()


class _Scope(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    name: str = ""
    version: str = ""
    attributes: list[_KeyValue] = []
    droppedAttributesCount: int = 0


class _Resource(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    attributes: list[_KeyValue] = []
    droppedAttributesCount: int = 0


class _ScopeSpans(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    scope: _Scope = _Scope()
    spans: list[_Span] = []
    schemaUrl: str = ""


class _ResourceSpans(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    resource: _Resource = _Resource()
    scopeSpans: list[_ScopeSpans] = []
    schemaUrl: str = ""


class _Request(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    resourceSpans: list[_ResourceSpans] = []


_CANONICAL = msgspec.json.Decoder(_Request)
_PAYLOAD = msgspec.json.Encoder()


class CanonicalAttributes(Attributes):
    """Over a dict of `_Value` structs: reads them as `JsonAttributes` reads the general path's dicts."""

    __slots__ = ()
    _string_member = "stringValue"

    def get(self, key: str) -> Any:
        value = self._values.get(key)
        if value is None:
            return None
        if value.stringValue is not _UNSET:
            return value.stringValue
        if value.boolValue is not _UNSET:
            return value.boolValue
        if value.intValue is not _UNSET:
            return int(value.intValue)
        if value.doubleValue is not _UNSET:
            return value.doubleValue
        if value.arrayValue is not _UNSET:
            return json.dumps([_canonical_scalar(item) for item in value.arrayValue.values])
        if value.kvlistValue is not _UNSET:
            return json.dumps({kv.key: _canonical_scalar(kv.value) for kv in value.kvlistValue.values})
        return None


def _canonical_scalar(value: _Scalar) -> Any:
    for member in (value.stringValue, value.boolValue, value.intValue, value.doubleValue):
        if member is not _UNSET:
            return member
    return None


def _decode_canonical(body: bytes) -> list[SpanRecord] | None:
    """The records of a body in the canonical form, else None (the general path decides)."""
    try:
        request = _CANONICAL.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    records: list[SpanRecord] = []
    append = records.append
    try:
        for resource_spans in request.resourceSpans:
            resource_attributes = resource_spans.resource.attributes
            service = next((kv for kv in resource_attributes if kv.key == SERVICE_NAME), None)
            resource = Resource(
                CanonicalAttributes({kv.key: kv.value for kv in resource_attributes}),
                {"attributes": [msgspec.to_builtins(service)] if service else []},
            )
            for scope_spans in resource_spans.scopeSpans:
                name, version = scope_spans.scope.name, scope_spans.scope.version
                scope = Scope(name, version, {"name": name, "version": version})
                for span in scope_spans.spans:
                    attributes = span.attributes
                    status_code = _json_enum(span.status.code, _STATUS_NAMES, "status.code")
                    append(
                        SpanRecord(
                            _json_id(span.traceId, "traceId"),
                            _json_id(span.spanId, "spanId"),
                            _json_id(span.parentSpanId, "parentSpanId"),
                            span.name,
                            _json_time(span.startTimeUnixNano, "startTimeUnixNano"),
                            _json_time(span.endTimeUnixNano, "endTimeUnixNano"),
                            status_code,
                            CanonicalAttributes({kv.key: kv.value for kv in attributes}),
                            span.events,
                            resource,
                            scope,
                            orjson.Fragment(_PAYLOAD.encode({
                                "name": span.name,
                                "attributes": attributes,
                                "status": {"code": status_code, "message": span.status.message},
                            })),
                        )
                    )
    except (TypeError, ValueError):
        return None  # a time or status code the general path reports with its place
    return records


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
    return orjson.dumps({"partialSuccess": {"rejectedSpans": str(rejected), "errorMessage": message}})


def encode_status(media: str, code: int, message: str) -> bytes:
    """A google.rpc.Status body, as OTLP/HTTP answers errors."""
    if media == PROTOBUF:
        return status_pb2.Status(code=code, message=message).SerializeToString()
    return orjson.dumps({"code": code, "message": message})
