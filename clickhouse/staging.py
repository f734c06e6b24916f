"""Rows of new operations: mapped rows for `operations`, and rows for `incoming_spans`.

A call the compiled pass mapped (ingest/_spanmap.c, for spans in its plain
subset) carries its `operations` row already, as the mapping view would have
written it: `direct_body` appends what the writer decided and the rows go
straight into `operations`. Every other call is staged through
`incoming_spans`, as clickhouse/incoming_span.proto describes, and the view
maps it.

A protobuf row is written by hand around bytes the ingester already has: the
exported InstrumentationScope and Span exactly as received, the resource's
`service.name` attribute (`ingest.codec.Resource`), and a small `Decision`. ClickHouse's Protobuf format reads a stream of such rows,
each prefixed with its length. A span from an OTLP/JSON export becomes a
JSONEachRow line of the same shape.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import orjson

from ingest.fastmap import compiled_rows, native_block
from ingest.mapping import CONTEXT_FIELDS
from ingest.store import StagedCall

TABLE = "incoming_spans"


@cache
def schema_settings(embedded: bool) -> dict[str, str]:
    """Insert settings naming the row schema.

    A server gets the schema's text with the insert (it cannot read our
    files). Embedded chdb reads the file by its absolute path, as
    clickhouse-local may, instead of caching a copy of the text in the
    working directory.
    """
    schema = resources.files("clickhouse") / "incoming_span.proto"
    if embedded:
        return {"format_schema": f"{Path(str(schema)).resolve()}:IncomingSpan"}
    text = schema.read_text(encoding="utf-8")
    return {"format_schema_source": "string", "format_schema": text, "format_schema_message_name": "IncomingSpan"}


_ONE_BYTE = [bytes((value,)) for value in range(0x80)]


def varint(value: int) -> bytes:
    """A protobuf base-128 varint (the library's encoder costs a call per byte)."""
    if value < 0x80:
        return _ONE_BYTE[value]
    if value < 0x4000:  # lengths of spans and rows
        return bytes((value & 0x7F | 0x80, value >> 7))
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# Field keys (number << 3 | wire type); every field number here is below 16, so one byte.
_LENGTH_DELIMITED = [_ONE_BYTE[number << 3 | 2] for number in range(16)] + [varint(number << 3 | 2) for number in range(16, 19)]
_VARINT = [_ONE_BYTE[number << 3] for number in range(16)]


def _bytes_field(number: int, data: bytes) -> bytes:
    return _LENGTH_DELIMITED[number] + varint(len(data)) + data


def _text_field(number: int, text: str) -> bytes:
    return _bytes_field(number, text.encode("utf-8")) if text else b""


def _int_field(number: int, value: int) -> bytes:
    return _VARINT[number] + varint(value) if value else b""


@lru_cache(maxsize=256)
def _shared_field(number: int, payload: bytes) -> bytes:
    # The resource and scope of one export repeat for every span in it.
    return _bytes_field(number, payload)


# Decision field numbers of the context fields, in CONTEXT_FIELDS order.
_CONTEXT_NUMBERS = range(9, 17)


@lru_cache(maxsize=4096)
def _context_bytes(context: tuple[str, ...]) -> bytes:
    # Few distinct contexts repeat across many calls (one per profile and user).
    return b"".join(_text_field(number, value) for number, value in zip(_CONTEXT_NUMBERS, context))


@lru_cache(maxsize=256)
def _kind_bytes(capability: str, operation: str) -> bytes:
    return _text_field(7, capability) + _text_field(8, operation)


# Fixed parts of a decision: ids are validated hex (16 or 32 ASCII
# characters, so their length is one byte), both times are fixed64 and packed
# in one call, and the version is nearly always small. (Times as fixed64: 8
# bytes packed in C beat a 9-byte varint built in Python.)
_TRACE_ID, _SPAN_ID, _PARENT_ID = _LENGTH_DELIMITED[1], _LENGTH_DELIMITED[2], _LENGTH_DELIMITED[3]
_TIMES = struct.Struct("<BQBQ")
_START_KEY, _END_KEY = 4 << 3 | 1, 5 << 3 | 1
_SMALL_VERSIONS = [_int_field(6, version) for version in range(256)]
_SPAN_FIELD, _DECISION_FIELD = _LENGTH_DELIMITED[3], _LENGTH_DELIMITED[4]


def protobuf_row(staged: StagedCall) -> bytes:
    """One IncomingSpan, length-prefixed: written in one join, on the writer's
    path for every span (a helper call per field cost twice as much)."""
    call = staged.call
    record = call.record
    exception_type, exception_message = call.exception
    trace_id, span_id, parent = record.trace_id, record.span_id, record.parent_span_id
    version = staged.version
    decision = b"".join(
        (
            _TRACE_ID,
            _ONE_BYTE[len(trace_id)],
            trace_id.encode(),
            _SPAN_ID,
            _ONE_BYTE[len(span_id)],
            span_id.encode(),
            _PARENT_ID + _ONE_BYTE[len(parent)] + parent.encode() if parent else b"",
            _TIMES.pack(_START_KEY, record.start_ns, _END_KEY, record.end_ns),
            _SMALL_VERSIONS[version] if version < 256 else _int_field(6, version),
            _kind_bytes(call.capability, call.operation),
            _context_bytes(staged.context),
            _text_field(17, exception_type) if exception_type else b"",
            _text_field(18, exception_message) if exception_message else b"",
        )
    )
    resource = _shared_field(1, record.resource.payload)
    scope = _shared_field(2, record.scope.payload)
    payload = record.payload
    payload_length, decision_length = varint(len(payload)), varint(len(decision))
    size = len(resource) + len(scope) + 2 + len(payload_length) + len(payload) + len(decision_length) + len(decision)
    return b"".join(
        (varint(size), resource, scope, _SPAN_FIELD, payload_length, payload, _DECISION_FIELD, decision_length, decision)
    )


# The columns of a direct row, with the types it is sent as, in the order
# ingest/_spanmap.c writes them: first what the span alone decides
# (`write_row`, a RowBinary row per call), then what the writer decided. The
# rest of `operations` takes its defaults; ClickHouse casts String to
# LowCardinality(String) on the way in.
_TYPES = {
    "timestamp": "DateTime64(9, 'UTC')",
    "sign": "Int8",
    "succeeded": "Bool",
    "streaming": "Bool",
    "attributes": "Map(String, String)",
    "version": "UInt32",
} | dict.fromkeys(
    "input_tokens output_tokens total_tokens cache_read_tokens cache_write_tokens reasoning_tokens duration_ns".split(),
    "UInt64",
)
ROW_COLUMNS = (
    "timestamp trace_id span_id parent_span_id sign service_name scope_name scope_version span_name "
    "provider provider_raw request_model response_model input_tokens output_tokens total_tokens "
    "cache_read_tokens cache_write_tokens reasoning_tokens duration_ns succeeded error_type error_message "
    "streaming conversation_id server_address attributes"
).split()
DIRECT_COLUMNS = tuple(
    (name, _TYPES.get(name, "String")) for name in (*ROW_COLUMNS, "capability", "operation", "version", *CONTEXT_FIELDS)
)
DIRECT_COLUMN_NAMES = tuple(name for name, _ in DIRECT_COLUMNS)


class Encoded(NamedTuple):
    """One group's new operations, as the three inserts that store them."""

    direct: bytes  # a Native block of rows for `operations` (DIRECT_COLUMNS)
    protobuf: bytes  # IncomingSpan rows for `incoming_spans`, mapped by the view
    json: list[bytes]  # JSONEachRow lines for `incoming_spans`


def encode(calls: Sequence[StagedCall]) -> Encoded:
    """The rows of calls the compiled pass mapped, then the staged rows of the rest:
    protobuf rows joined, JSON lines apart."""
    direct_calls, protobuf_calls, json_rows = [], [], []
    for staged in calls:
        call = staged.call
        if call.row is not None:
            direct_calls.append(staged)
        elif isinstance(call.record.payload, bytes):
            protobuf_calls.append(staged)
        else:
            json_rows.append(json_row(staged))
    return Encoded(direct_body(direct_calls), protobuf_body(protobuf_calls), json_rows)


def direct_body(calls: Sequence[StagedCall]) -> bytes:
    """The `operations` rows of calls that carry one (only the compiled pass writes them)."""
    if not calls:
        return b""
    assert native_block is not None, "a call has a row, so ingest._spanmap is built"
    return native_block(calls, DIRECT_COLUMNS)


def protobuf_body(calls: Sequence[StagedCall]) -> bytes:
    """`protobuf_row` of each call, joined: compiled when ingest._spanmap is built
    (the same bytes, tests/unit/test_spanmap.py), at a quarter of the cost."""
    if compiled_rows is not None:
        return compiled_rows(calls)
    return b"".join(protobuf_row(staged) for staged in calls)


def json_row(staged: StagedCall) -> bytes:
    call = staged.call
    record = call.record
    profile_id, profile_alias, user_id, user_name, feature_type, feature_id, entity_id, entity_type = staged.context
    return orjson.dumps(
        {
            "resource": record.resource.payload,
            "scope": record.scope.payload,
            "span": record.payload,
            "decision": {
                "traceId": record.trace_id,
                "spanId": record.span_id,
                "parentSpanId": record.parent_span_id,
                "startTimeUnixNano": record.start_ns,
                "endTimeUnixNano": record.end_ns,
                "version": staged.version,
                "capability": call.capability,
                "operation": call.operation,
                "profileId": profile_id,
                "profileAlias": profile_alias,
                "userId": user_id,
                "userName": user_name,
                "featureType": feature_type,
                "featureId": feature_id,
                "entityId": entity_id,
                "entityType": entity_type,
                "exceptionType": call.exception[0],
                "exceptionMessage": call.exception[1],
            },
        }
    )
