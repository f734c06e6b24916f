"""Hostile OTLP payloads, generated deterministically (a seeded `random.Random`, no clock, no os.urandom).

Every payload that is well-formed enough to be stored carries ids of its own
(drawn from the generator), so that a stored row can be traced back to the
one request whose body holds its ids: the suite checks that every row comes
from a request that was answered 2xx, never from a refused one.

Two kinds:
- mutants: valid exports broken at random (random bytes, truncation at every
  few bytes, bit flips, chunk edits; for JSON also structural edits that put
  a value of the wrong type anywhere). Their outcome is not predicted, only
  bounded: 2xx or 4xx, never 5xx, and nothing stored from a 4xx.
- edge cases with a predicted outcome (`Expect`): deep nesting, huge values,
  invalid UTF-8, ids of the wrong length, timestamps at the ends of every
  range, token counts of every wrong kind. For these the suite checks the
  status and exactly which spans are stored.
"""

from __future__ import annotations

import base64
import copy
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson
from google.protobuf.internal.encoder import _VarintBytes as varint
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.support.spans import any_value, export_message

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
START = 1_741_564_800_000_000_000  # 2025-03-10T00:00:00Z
MIN_ACCEPTED_NS = 31_536_000 * 10**9  # 1971-01-01, the ingester's lower bound
MAX_ACCEPTED_NS = 7_258_118_400 * 10**9  # 2200-01-01, its upper bound
YEAR_1_NS = -62_135_596_800 * 10**9
YEAR_9999_NS = 253_402_300_799 * 10**9
UINT64_MAX = 2**64 - 1
INT64_MAX = 2**63 - 1
DEEP = 100_000  # levels of nesting: far past any parser's recursion limit


@dataclass(frozen=True)
class Expect:
    """The predicted answer: HTTP status, the (trace, span) keys stored, the spans rejected."""

    status: int
    stored: frozenset[tuple[str, str]] = frozenset()
    rejected: int = 0
    # Columns of the stored row, where the contract says what they hold.
    columns: dict | None = None


@dataclass
class Payload:
    label: str
    body: bytes
    media: str
    expect: Expect | None = None
    # A short body sent with Content-Encoding (bombs are in their own module).
    encoding: str | None = None
    keys: list[tuple[str, str]] = field(default_factory=list)  # every AI span's key, as built


class Ids:
    """Fresh, unique ids from the generator."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def trace(self) -> str:
        return self.rng.getrandbits(128).to_bytes(16, "big").hex()

    def span(self) -> str:
        return self.rng.getrandbits(64).to_bytes(8, "big").hex()


# --- valid exports ----------------------------------------------------------


def chat_attributes(i: int) -> dict:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": f"gpt-{i % 7}",
        "gen_ai.usage.input_tokens": 10 + i % 50,
        "gen_ai.usage.output_tokens": 3,
        "tags": ["a", 1, 2.5, True],
        "meta": {"k": "v", "n": 7},
    }


def proto_span(attributes: dict, *, trace: str, span: str, parent: str = "", name: str = "chat", start: int = START,
               end: int | None = None, status: int = 0, message: str = "") -> Span:
    result = Span(
        trace_id=bytes.fromhex(trace), span_id=bytes.fromhex(span), parent_span_id=bytes.fromhex(parent),
        name=name, start_time_unix_nano=start, end_time_unix_nano=start + 1_000_000 if end is None else end,
    )
    for key, value in attributes.items():
        result.attributes.add(key=key).value.CopyFrom(any_value(value))
    result.status.code = status
    result.status.message = message
    return result


def proto_export(*spans: Span, resource: dict | None = None, scope: str = "hostile") -> ExportTraceServiceRequest:
    return export_message(*spans, resource=resource, scope=scope, service="hostile")


def template(ids: Ids, i: int) -> tuple[ExportTraceServiceRequest, list[tuple[str, str]]]:
    """A realistic export: a request span with Umbraco context, two model calls under it, a tool span."""
    trace = ids.trace()
    root, chat, embed, tool = ids.span(), ids.span(), ids.span(), ids.span()
    request = proto_export(
        proto_span({"umbraco.ai.profile.id": f"profile-{i}", "umbraco.ai.user.id": "user-1"}, trace=trace, span=root,
                   name="POST /api", end=START + 10_000_000),
        proto_span(chat_attributes(i), trace=trace, span=chat, parent=root, start=START + 1_000),
        proto_span({"gen_ai.operation.name": "embeddings", "gen_ai.request.model": "embed", "gen_ai.usage.input_tokens": 5},
                   trace=trace, span=embed, parent=root, start=START + 2_000_000),
        proto_span({"gen_ai.operation.name": "execute_tool"}, trace=trace, span=tool, parent=root),
        resource={"service.name": "hostile", "host.name": "fuzz"},
    )
    return request, [(trace, chat), (trace, embed)]


def to_json(request: ExportTraceServiceRequest) -> dict:
    """OTLP/JSON of a request, as the JSON exporters write it (hex ids, 64-bit integers as strings)."""

    def value(v) -> dict:
        kind = v.WhichOneof("value")
        if kind == "string_value":
            return {"stringValue": v.string_value}
        if kind == "bool_value":
            return {"boolValue": v.bool_value}
        if kind == "int_value":
            return {"intValue": str(v.int_value)}
        if kind == "double_value":
            return {"doubleValue": v.double_value}
        if kind == "bytes_value":
            return {"bytesValue": base64.b64encode(v.bytes_value).decode()}
        if kind == "array_value":
            return {"arrayValue": {"values": [value(x) for x in v.array_value.values]}}
        if kind == "kvlist_value":
            return {"kvlistValue": {"values": [{"key": kv.key, "value": value(kv.value)} for kv in v.kvlist_value.values]}}
        return {}

    def attributes(items) -> list:
        return [{"key": kv.key, "value": value(kv.value)} for kv in items]

    return {
        "resourceSpans": [
            {
                "resource": {"attributes": attributes(rs.resource.attributes)},
                "scopeSpans": [
                    {
                        "scope": {"name": ss.scope.name, "version": ss.scope.version},
                        "spans": [
                            {
                                "traceId": s.trace_id.hex(),
                                "spanId": s.span_id.hex(),
                                "parentSpanId": s.parent_span_id.hex(),
                                "name": s.name,
                                "kind": 3,
                                "startTimeUnixNano": str(s.start_time_unix_nano),
                                "endTimeUnixNano": str(s.end_time_unix_nano),
                                "attributes": attributes(s.attributes),
                                "status": {"code": s.status.code, "message": s.status.message},
                            }
                            for s in ss.spans
                        ],
                    }
                    for ss in rs.scope_spans
                ],
            }
            for rs in request.resource_spans
        ]
    }


def marker(ids: Ids, n: int, media: str) -> Payload:
    """A valid export of one model call, sent between the hostile ones: it must be stored, once."""
    trace, span = ids.trace(), ids.span()
    request = proto_export(proto_span({**chat_attributes(n), "marker": n}, trace=trace, span=span))
    body = request.SerializeToString() if media == PROTOBUF else orjson.dumps(to_json(request))
    return Payload(f"marker {n}", body, media, Expect(200, frozenset({(trace, span)})), keys=[(trace, span)])


# --- protobuf by hand -------------------------------------------------------


def _ld(number: int, data: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return varint(number << 3 | 2) + varint(len(data)) + data


def wrap_span(raw_span: bytes, resource: bytes = b"", scope: bytes = b"") -> bytes:
    """An ExportTraceServiceRequest around one span's bytes (which need not be valid)."""
    scope_spans = (_ld(1, scope) if scope else b"") + _ld(2, raw_span)
    resource_spans = (_ld(1, resource) if resource else b"") + _ld(2, scope_spans)
    return _ld(1, resource_spans)


def nested_any_value(depth: int, kind: str) -> bytes:
    """An AnyValue nested `depth` levels deep (kvlist, array or alternating), built in linear time.

    Length-delimited nesting is prefixes only: each level is (tag, length)
    headers before the inner bytes, so the lengths are computed inside out and
    the headers written outside in.
    """
    leaf = _ld(1, b"x")  # AnyValue{string_value: "x"}
    headers: list[bytes] = []
    size = len(leaf)
    for level in range(depth):
        as_kvlist = kind == "kvlist" or (kind == "mixed" and level % 2)
        if as_kvlist:
            # AnyValue{kvlist_value(6): KeyValueList{values(1): KeyValue{key(1): "k", value(2): <inner>}}}
            value_header = varint(2 << 3 | 2) + varint(size)
            key_value = 3 + len(value_header) + size
            kv_header = varint(1 << 3 | 2) + varint(key_value)
            kvlist = len(kv_header) + key_value
            header = varint(6 << 3 | 2) + varint(kvlist) + kv_header + _ld(1, b"k") + value_header
        else:
            # AnyValue{array_value(5): ArrayValue{values(1): <inner>}}
            item_header = varint(1 << 3 | 2) + varint(size)
            array = len(item_header) + size
            header = varint(5 << 3 | 2) + varint(array) + item_header
        headers.append(header)
        size += len(header)
    return b"".join(reversed(headers)) + leaf


def span_bytes_with_attribute(trace: str, span: str, key: bytes, any_value_bytes: bytes, extra: dict | None = None) -> bytes:
    base = proto_span({"gen_ai.operation.name": "chat", **(extra or {})}, trace=trace, span=span).SerializeToString()
    return base + _ld(9, _ld(1, key) + _ld(2, any_value_bytes))


def nested_groups(depth: int) -> bytes:
    """Unknown field 99 as `depth` nested groups (wire types 3/4), inside a span."""
    return varint(99 << 3 | 3) * depth + varint(99 << 3 | 4) * depth


# --- generators ---------------------------------------------------------------


def protobuf_mutants(rng: random.Random, ids: Ids, count: int) -> Iterator[Payload]:
    """Random bytes, truncations at every few bytes, bit flips and chunk edits of valid exports."""
    for n in range(count):
        kind = n % 5
        request, keys = template(ids, n)
        valid = request.SerializeToString()
        if kind == 0:
            body = rng.randbytes(rng.choice((0, 1, 2, 7, 64, 512, 4096)))
            label = "random bytes"
        elif kind == 1:
            # Truncations: every 4th cut point of successive templates, shifted by one on each pass.
            step = n // 5 * 4
            cut = (step + step // len(valid)) % len(valid)
            body, label = valid[:cut], f"truncated at {cut}/{len(valid)}"
        elif kind == 2:
            data = bytearray(valid)
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            body, label = bytes(data), "bit flips"
        elif kind == 3:
            data = bytearray(valid)
            at = rng.randrange(len(data))
            edit = rng.choice(("delete", "insert", "duplicate", "overwrite"))
            width = rng.randint(1, 16)
            if edit == "delete":
                del data[at:at + width]
            elif edit == "insert":
                data[at:at] = rng.randbytes(width)
            elif edit == "duplicate":
                data[at:at] = data[at:at + width]
            else:
                data[at:at + width] = bytes([rng.choice((0x00, 0xFF, 0x80, 0x7F))]) * width
            body, label = bytes(data), f"chunk {edit}"
        else:
            # Varint lengths bent: a length byte made larger or smaller.
            data = bytearray(valid)
            positions = [i for i, b in enumerate(data[:-1]) if b & 7 == 2 and data[i + 1] < 0x80]
            at = rng.choice(positions) + 1
            data[at] = rng.choice((0, 1, data[at] + 1, max(data[at] - 1, 0), 0x7F))
            body, label = bytes(data), "bent length"
        yield Payload(f"protobuf {label} #{n}", body, PROTOBUF, keys=keys)


def json_mutants(rng: random.Random, ids: Ids, count: int) -> Iterator[Payload]:
    """Random bytes, truncations, character edits and structural edits (wrong types anywhere) of valid exports."""
    for n in range(count):
        kind = n % 4
        request, keys = template(ids, n)
        document = to_json(request)
        valid = orjson.dumps(document)
        if kind == 0:
            body = rng.choice((rng.randbytes(rng.randint(0, 300)), valid[: rng.randrange(len(valid))]))
            label = "random bytes or truncation"
        elif kind == 1:
            data = bytearray(valid)
            for _ in range(rng.randint(1, 3)):
                data[rng.randrange(len(data))] = rng.choice(b'{}[],:"\\0123456789.eE-+ntfa\xff\x00')
            body, label = bytes(data), "character edits"
        else:
            mutated = copy.deepcopy(document)
            path = _replace_random_node(rng, mutated)
            # The standard library writes what orjson cannot: integers past 64 bits, NaN and Infinity literals.
            body, label = json.dumps(mutated).encode(), f"wrong type at {path}"
        yield Payload(f"json {label} #{n}", body, JSON, keys=keys)


_WRONG_VALUES = (
    None, True, False, 0, -1, 2**63, -(2**63) - 1, 10**30, 1.5, -0.0, 1e308, float("nan"), float("inf"), "", "x", "NaN", "Infinity", "-Infinity",
    "1e400", "12", "-5", "0x1F", "ZZZZ", "\u0000", "\ud7ff\ue000", [], [None], {}, {"a": None}, [[[[[]]]]],
    {"stringValue": 5}, {"intValue": "1.5"}, {"intValue": "99999999999999999999"}, {"doubleValue": "nan"},
    {"arrayValue": {"values": "x"}}, {"kvlistValue": {"values": [{"key": 5}]}},
)


def _replace_random_node(rng: random.Random, document) -> str:
    """Replace one random node (object member or array item) with a value of another type; return its path."""
    nodes = []

    def walk(node, path):
        if isinstance(node, dict):
            for key, child in node.items():
                nodes.append((node, key, f"{path}.{key}"))
                walk(child, f"{path}.{key}")
        elif isinstance(node, list):
            for index, child in enumerate(node):
                nodes.append((node, index, f"{path}[{index}]"))
                walk(child, f"{path}[{index}]")

    walk(document, "$")
    holder, key, path = rng.choice(nodes)
    holder[key] = copy.deepcopy(rng.choice(_WRONG_VALUES))
    return path


def protobuf_edge_cases(ids: Ids, body_limit: int) -> Iterator[Payload]:
    """Edge cases with a predicted answer."""

    def one(label: str, span: Span | bytes, stored: bool, rejected: int = 0, status: int = 200, columns: dict | None = None,
            **wrap) -> Payload:
        raw = span if isinstance(span, bytes) else span.SerializeToString()
        body = wrap_span(raw, **wrap)
        key = (trace, span_id)
        keys = frozenset({key}) if stored and status == 200 else frozenset()
        return Payload(label, body, PROTOBUF, Expect(status, keys, rejected, columns), keys=[key])

    chat = {"gen_ai.operation.name": "chat"}

    # Deep nesting: past the decoder's depth limit (100 messages) the request is refused (400), never a
    # RecursionError; under it (20 levels: 40 to 60 messages) the call is stored, the nested levels skipped.
    for kind in ("kvlist", "array", "mixed"):
        for depth in (DEEP, 101, 20):
            trace, span_id = ids.trace(), ids.span()
            raw = span_bytes_with_attribute(trace, span_id, b"deep", nested_any_value(depth, kind))
            yield one(f"AnyValue {kind} nested {depth} deep", raw, stored=True, status=200 if depth < 100 else 400)
    trace, span_id = ids.trace(), ids.span()
    raw = proto_span(chat, trace=trace, span=span_id).SerializeToString() + nested_groups(DEEP)
    yield one("unknown field as 100k nested groups", raw, stored=False, status=400)
    trace, span_id = ids.trace(), ids.span()
    deep_resource = _ld(1, _ld(1, b"deep") + _ld(2, nested_any_value(DEEP, "kvlist")))
    yield one("resource attribute nested 100k deep", proto_span(chat, trace=trace, span=span_id), stored=False,
              status=400, resource=deep_resource)

    # Huge values: just under the body limit is stored; just over is 413.
    for size, status in ((body_limit - 4096, 200), (body_limit + 1, 413)):
        trace, span_id = ids.trace(), ids.span()
        yield one(f"attribute value of {size} bytes", proto_span({**chat, "gen_ai.prompt": "p" * size}, trace=trace,
                                                                 span=span_id), stored=True, status=status)
    trace, span_id = ids.trace(), ids.span()
    many = {f"attribute.{i}": f"value {i}" for i in range(5000)}
    yield one("5000 attributes", proto_span({**chat, **many}, trace=trace, span=span_id), stored=True)
    trace, span_id = ids.trace(), ids.span()
    yield one("a 64 KiB attribute key", proto_span({**chat, "k" * 65536: "v"}, trace=trace, span=span_id), stored=True)

    # Invalid UTF-8 in every string the decoder reads: the request is malformed (400).
    bad = b"\xff\xfe\xc3\x28"
    for where in ("span name", "attribute key", "attribute value", "nested value", "status message", "scope name",
                  "resource attribute"):
        trace, span_id = ids.trace(), ids.span()
        base = proto_span(chat, trace=trace, span=span_id).SerializeToString()
        resource, scope = b"", b""
        if where == "span name":
            raw = base + _ld(5, bad)
        elif where == "attribute key":
            raw = base + _ld(9, _ld(1, bad) + _ld(2, _ld(1, b"v")))
        elif where == "attribute value":
            raw = base + _ld(9, _ld(1, b"k") + _ld(2, _ld(1, bad)))
        elif where == "nested value":
            raw = base + _ld(9, _ld(1, b"k") + _ld(2, _ld(5, _ld(1, _ld(1, bad)))))
        elif where == "status message":
            raw = base + _ld(15, _ld(2, bad))
        elif where == "scope name":
            raw, scope = base, _ld(1, bad)
        else:
            raw, resource = base, _ld(1, _ld(1, b"k") + _ld(2, _ld(1, bad)))
        yield one(f"invalid UTF-8 in the {where}", raw, stored=False, status=400, resource=resource, scope=scope)

    # A failed call whose exception event is not valid protobuf: the call is stored, the event is skipped.
    for event in (_ld(2, bad), b"\x0a\xff\xff\xff\xff\x0f", _ld(2, b"exception") + _ld(3, b"\x0a\x05k")):
        trace, span_id = ids.trace(), ids.span()
        raw = proto_span(chat, trace=trace, span=span_id, status=2, message="boom").SerializeToString() + _ld(11, event)
        yield one(f"failed call with a broken exception event {event[:6]!r}", raw, stored=True)

    # Ids of the wrong length or all zeros: the span is rejected (partial success), never stored.
    for trace_bytes, span_bytes, parent_bytes in (
        (0, 8, 0), (1, 8, 0), (8, 8, 0), (15, 8, 0), (17, 8, 0), (32, 8, 0), (16, 0, 0), (16, 4, 0), (16, 7, 0),
        (16, 9, 0), (16, 16, 0), (16, 8, 4), (16, 8, 9), ("zero", 8, 0), (16, "zero", 0),
    ):
        trace, span_id = ids.trace(), ids.span()
        message = Span(name="chat", start_time_unix_nano=START, end_time_unix_nano=START + 1)
        message.trace_id = bytes(16) if trace_bytes == "zero" else bytes.fromhex(trace)[:trace_bytes].ljust(trace_bytes, b"\x01")
        message.span_id = bytes(8) if span_bytes == "zero" else bytes.fromhex(span_id)[:span_bytes].ljust(span_bytes, b"\x02")
        message.parent_span_id = b"\x03" * parent_bytes
        message.attributes.add(key="gen_ai.operation.name").value.string_value = "chat"
        yield one(f"ids of {trace_bytes}/{span_bytes}/{parent_bytes} bytes", message, stored=False, rejected=1)

    # Timestamps at the ends of every range.
    for start, end, accepted in (
        (0, 1, False), (1, 2, False), (MIN_ACCEPTED_NS - 1, MIN_ACCEPTED_NS, False), (MIN_ACCEPTED_NS, MIN_ACCEPTED_NS, True),
        (MAX_ACCEPTED_NS, MAX_ACCEPTED_NS + 1, True), (MAX_ACCEPTED_NS + 1, MAX_ACCEPTED_NS + 2, False),
        (INT64_MAX, INT64_MAX, False), (2**63, UINT64_MAX, False), (UINT64_MAX, UINT64_MAX, False),
        (START, START - 1, False), (START, 0, False), (START, UINT64_MAX, True), (START, START, True),
    ):
        trace, span_id = ids.trace(), ids.span()
        yield one(f"start {start} end {end}", proto_span(chat, trace=trace, span=span_id, start=start, end=end),
                  stored=accepted, rejected=0 if accepted else 1)

    # Token counts of every wrong kind: the call is stored; a count that is negative, fractional, not a
    # number or past 10^18 is unknown (0); a whole number as text counts.
    for value, count in ((-1, 0), (-(2**63), 0), (INT64_MAX, 0), (0, 0), (1e300, 0), (float("nan"), 0), (float("inf"), 0),
                         (-0.0, 0), (1.5, 0), (7.0, 7), ("12", 12), ("1e3", 1000), ("abc", 0), ("", 0),
                         ("99999999999999999999999", 0), (True, 0), ([1, 2], 0), ({"n": 1}, 0), (b"\x00\x01", 0)):
        trace, span_id = ids.trace(), ids.span()
        attributes = {**chat, "gen_ai.usage.input_tokens": value, "gen_ai.usage.output_tokens": value,
                      "gen_ai.usage.total_tokens": value}
        yield one(f"token counts {value!r}", proto_span(attributes, trace=trace, span=span_id), stored=True,
                  columns={"input_tokens": count, "output_tokens": count, "total_tokens": count})

    # Numbers where strings belong and strings where numbers belong, on every mapped key.
    trace, span_id = ids.trace(), ids.span()
    odd = {**chat, "gen_ai.provider.name": 42, "gen_ai.request.model": 1.5, "umbraco.ai.user.id": 7,
           "umbraco.ai.profile.id": True, "gen_ai.request.stream": "yes", "error.type": 500, "server.address": [1]}
    yield one("wrong types on mapped keys", proto_span(odd, trace=trace, span=span_id), stored=True,
              columns={"provider": "42", "request_model": "1.5", "user_id": "7", "succeeded": False, "error_type": "500"})

    # The same span twice in one export, and an operation name of every type.
    trace, span_id = ids.trace(), ids.span()
    twice = proto_span(chat, trace=trace, span=span_id).SerializeToString()
    body = _ld(1, _ld(2, _ld(2, twice) + _ld(2, twice)))
    yield Payload("the same span twice", body, PROTOBUF, Expect(200, frozenset({(trace, span_id)})), keys=[(trace, span_id)])
    for name in (5, 1.0, True, ["chat"], {"chat": 1}, "CHAT", "chat\x00", "chat " * 1000):
        trace, span_id = ids.trace(), ids.span()
        stored = name == "CHAT"
        yield one(f"operation name {str(name)[:20]!r}", proto_span({"gen_ai.operation.name": name}, trace=trace, span=span_id),
                  stored=stored)


def json_edge_cases(ids: Ids) -> Iterator[Payload]:
    """JSON edge cases with a predicted answer."""

    def doc(span: dict) -> bytes:
        return orjson.dumps({"resourceSpans": [{"scopeSpans": [{"scope": {"name": "hostile"}, "spans": [span]}]}]})

    def chat_span(trace: str, span_id: str, **fields) -> dict:
        return {
            "traceId": trace, "spanId": span_id, "name": "chat", "startTimeUnixNano": str(START),
            "endTimeUnixNano": str(START + 1000),
            "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}], **fields,
        }

    def one(label: str, body: bytes, status: int, stored: bool = False, rejected: int = 0,
            columns: dict | None = None) -> Payload:
        key = (trace, span_id)
        return Payload(label, body, JSON, Expect(status, frozenset({key}) if stored else frozenset(), rejected, columns),
                       keys=[key])

    # Not JSON at all, or JSON that orjson refuses: 400.
    for label, text in (
        ("NaN literal", b'{"resourceSpans": NaN}'), ("Infinity literal", b'{"x": Infinity}'),
        ("huge exponent", b'{"resourceSpans": [], "x": 1e400}'), ("lone surrogate", b'{"x": "\\ud800"}'),
        ("invalid UTF-8", b'{"x": "\xff"}'), ("100k nested arrays", b"[" * DEEP + b"]" * DEEP),
        ("100k nested objects", b'{"a":' * DEEP + b"1" + b"}" * DEEP), ("trailing garbage", b"{} x"),
        ("BOM", b"\xef\xbb\xbf{}"), ("NUL", b"\x00"), ("only whitespace", b"   "), ("a string", b'"resourceSpans"'),
        ("null", b"null"), ("a number", b"12"),
    ):
        trace, span_id = ids.trace(), ids.span()
        yield one(label, text, 400)

    def with_raw_attribute(span: dict, value_text: str) -> bytes:
        """A document whose span carries one more attribute, `deep`, written as given (no serializer nests that deep)."""
        text = orjson.dumps(span).decode()
        assert text.endswith("}]}")  # the attributes array closes the span
        text = text[:-2] + ', {"key": "deep", "value": ' + value_text + "}]}"
        return ('{"resourceSpans": [{"scopeSpans": [{"spans": [' + text + "]}]}]}").encode()

    # Deep nesting inside an attribute, under orjson's depth limit (1024): stored, deeper levels dropped.
    trace, span_id = ids.trace(), ids.span()
    nested = '{"stringValue": "x"}'
    for _ in range(150):  # 5 JSON levels each: 750 in all
        nested = '{"kvlistValue": {"values": [{"key": "k", "value": ' + nested + "}]}}"
    yield one("kvlist nested 150 deep", with_raw_attribute(chat_span(trace, span_id), nested), 200, stored=True)
    # ... and past it: the whole request is 400.
    trace, span_id = ids.trace(), ids.span()
    deep = '{"arrayValue": {"values": [' * DEEP + '{"stringValue": "x"}' + "]}}" * DEEP
    yield one("array value nested 100k deep", with_raw_attribute(chat_span(trace, span_id), deep), 400)

    # Duplicate keys: the last one wins, as in every mainstream JSON parser.
    trace, span_id = ids.trace(), ids.span()
    text = '{"spanId": "zz", ' + orjson.dumps(chat_span(trace, span_id)).decode()[1:]
    body = ('{"resourceSpans": [{"scopeSpans": [{"spans": [' + text + "]}]}]}").encode()
    yield one("duplicate spanId, the last one valid", body, 200, stored=True)

    # Ids: upper-case hex (accepted), hex of the wrong length, not hex, all zeros, base64 (proto3 JSON's
    # spelling: accepted when it decodes to 8 bytes). A wrong id rejects the span (partial success).
    for label, trace_text, span_text, accepted in (
        ("upper-case hex", str.upper, None, True),
        ("short trace id", lambda t: "abc", None, False),
        ("short span id", None, lambda s: "abc", False),
        ("zero trace id", lambda t: "0" * 32, None, False),
        ("zero span id", None, lambda s: "0" * 16, False),
        ("trace id not hex", lambda t: "g" * 32, None, False),
        ("span id not hex", None, lambda s: "ZZZZZZZZZZZZZZZZ", False),
        ("trace id of odd base64", lambda t: "trace-id-base64==", None, False),
        ("span id as base64 of 7 bytes", None, lambda s: base64.b64encode(bytes.fromhex(s)[:7]).decode(), False),
        ("span id as base64 of 8 bytes", None, lambda s: base64.b64encode(bytes.fromhex(s)).decode(), True),
    ):
        trace, span_id = ids.trace(), ids.span()
        fields = {}
        if trace_text:
            fields["traceId"] = trace_text(trace)
        if span_text:
            fields["spanId"] = span_text(span_id)
        yield one(f"json {label}", doc(chat_span(trace, span_id, **fields)), 200, stored=accepted,
                  rejected=0 if accepted else 1)
    for wrong in (12, 1.5, True, [], {}):
        trace, span_id = ids.trace(), ids.span()
        yield one(f"traceId {wrong!r}", doc(chat_span(trace, span_id, traceId=wrong)), 400)

    # Timestamps: year 1, year 9999, uint64 max and past it, negative, as numbers and as strings. Times are
    # fixed64 in OTLP: a number protobuf cannot carry makes the request malformed (400); one it can
    # carry but outside 1971-2200 rejects the span (partial success).
    for start, end, outcome in (
        (YEAR_1_NS, YEAR_1_NS + 1, 400), (YEAR_9999_NS, YEAR_9999_NS + 1, 400), (UINT64_MAX, UINT64_MAX, "rejected"),
        (UINT64_MAX + 1, UINT64_MAX + 2, 400), (-1, 0, 400), (0, 0, "rejected"), (START, START - 1, "rejected"),
        (str(START), str(START + 5), "stored"), (float(START), START + 10, "stored"), (START, UINT64_MAX, "stored"),
        (START, 10**40, 400),
    ):
        trace, span_id = ids.trace(), ids.span()
        span = chat_span(trace, span_id, startTimeUnixNano=start if isinstance(start, (str, float)) else str(start),
                         endTimeUnixNano=end if isinstance(end, str) else str(end))
        yield one(f"json start {start} end {end}", doc(span), 400 if outcome == 400 else 200, stored=outcome == "stored",
                  rejected=int(outcome == "rejected"))
    for wrong in ("soon", "1.5", 1.5, True, [], "0x10", ""):
        trace, span_id = ids.trace(), ids.span()
        yield one(f"startTimeUnixNano {wrong!r}", doc(chat_span(trace, span_id, startTimeUnixNano=wrong)), 400)

    # Token counts and numbers as strings: stored, unusable counts read as unknown (0).
    for value, count in (({"intValue": "-1"}, 0), ({"intValue": str(INT64_MAX)}, 0), ({"intValue": 42}, 42),
                         ({"intValue": "7"}, 7), ({"intValue": "0443"}, 443), ({"intValue": "\u0663"}, 3),
                         ({"intValue": " 9"}, 9), ({"intValue": "123456789012"}, 123456789012),
                         ({"doubleValue": "NaN"}, 0), ({"doubleValue": "Infinity"}, 0), ({"doubleValue": 1e308}, 0),
                         ({"doubleValue": "-0"}, 0), ({"doubleValue": "8"}, 8), ({"stringValue": "1e3"}, 1000),
                         ({"stringValue": "12"}, 12), ({"boolValue": True}, 0),
                         ({"arrayValue": {"values": [{"intValue": "3"}]}}, 0), ({}, 0)):
        trace, span_id = ids.trace(), ids.span()
        span = chat_span(trace, span_id)
        span["attributes"].append({"key": "gen_ai.usage.input_tokens", "value": value})
        yield one(f"json token count {value!r}", doc(span), 200, stored=True, columns={"input_tokens": count})
    for value in ({"intValue": str(2**63)}, {"intValue": "1.5"}, {"intValue": 1.5}, {"doubleValue": "x"},
                  {"intValue": "--5"}, {"intValue": "-"}, {"intValue": ""}, {"intValue": "\u00b2"},
                  {"boolValue": "true"}, {"stringValue": 5}, {"arrayValue": []}, {"kvlistValue": {"values": [{"key": 1}]}}):
        trace, span_id = ids.trace(), ids.span()
        span = chat_span(trace, span_id)
        span["attributes"].append({"key": "gen_ai.usage.input_tokens", "value": value})
        yield one(f"json wrong token value {value!r}", doc(span), 400)

    # A failed call whose exception event is malformed: stored, the event skipped.
    for events in ([{"name": "exception", "attributes": "x"}], [{"name": "exception", "attributes": [{"key": 5}]}],
                   [{"name": "exception", "attributes": [{"key": "exception.message", "value": {"intValue": "x"}}]}],
                   ["exception"], [None]):
        trace, span_id = ids.trace(), ids.span()
        span = chat_span(trace, span_id, status={"code": 2, "message": "boom"}, events=events)
        yield one(f"failed call with events {str(events)[:40]}", doc(span), 200, stored=True)
