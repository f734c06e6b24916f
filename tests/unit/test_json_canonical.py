"""OTLP/JSON's two decoders: the canonical path (msgspec, typed) against the general one (orjson, value by value).

A body the canonical path takes must be one the general path takes too, decoded
to the same records; and the canonical path must take what exporters send, or
it saves nothing. Documents are generated around the canonical form: some in
it, most a step away (snake_case, nulls, two members in one value, numbers out
of range, nesting the general path drops...).
"""

from __future__ import annotations

import base64
import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.json.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, Status, StatusCode

from bench.payloads import IdSource, build_templates, fresh_body
from ingest import codec
from ingest.errors import MalformedRequest

SETTINGS = settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _attribute_view(attributes: codec.Attributes) -> dict:
    keys = sorted(attributes._values)
    return {
        "present": attributes.present(keys),
        "values": [(key, type(value).__name__, value) for key in keys for value in [attributes.get(key)]],
        "texts": attributes.texts(keys),
    }


def _json(value: object) -> object:
    # A payload as ClickHouse will read it: the general path's dict, or the canonical path's encoded JSON.
    return orjson.loads(orjson.dumps(value))


def _view(record: codec.SpanRecord) -> dict:
    return {
        "ids": (record.trace_id, record.span_id, record.parent_span_id),
        "name": record.name,
        "times": (record.start_ns, record.end_ns),
        "status": record.status_code,
        "attributes": _attribute_view(record.attributes),
        "exception": record.exception(),
        "resource": _attribute_view(record.resource.attributes),
        "resource_payload": _json(record.resource.payload),
        "scope": (record.scope.name, record.scope.version, _json(record.scope.payload)),
        "payload": _json(record.payload),
    }


def _general(body: bytes) -> list[dict] | str:
    try:
        return [_view(record) for record in codec._decode_general(body)]
    except MalformedRequest as error:
        return f"400: {error}"


def _assert_agree(body: bytes, must_take: bool) -> None:
    fast = codec._decode_canonical(body)
    if must_take:
        assert fast is not None, body[:500]
    if fast is not None:
        assert [_view(record) for record in fast] == _general(body)


# --- generated documents -----------------------------------------------------

HEX = "0123456789abcdef"
texts = st.text(max_size=12)
hex_ids = st.one_of(
    st.text(HEX, min_size=32, max_size=32), st.text(HEX, min_size=16, max_size=16),
    st.text(HEX.upper(), min_size=16, max_size=16), st.sampled_from(["", "0" * 16, "abc", "zz" * 8]),
    st.binary(min_size=8, max_size=8).map(lambda b: base64.b64encode(b).decode()),
)
times = st.integers(0, 2**64 - 1).map(str) | st.integers(-5, 2**64 + 5) | st.sampled_from(["soon", " 12", "1_0", "-1"])
int_members = st.one_of(
    st.integers(-(2**63), 2**63 - 1).map(str), st.integers(-(2**65), 2**65), st.integers(0, 10**20).map(str),
    st.sampled_from([" 12", "+5", "1_0", "05", "-", "", "٣", 5.0, 5.5, True, None]),
)
double_members = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**70), 2**70),
    st.sampled_from(["NaN", "Infinity", "1.5", True, None]),
)
CANONICAL_SCALARS = st.one_of(
    st.builds(lambda v: {"stringValue": v}, texts),
    st.builds(lambda v: {"boolValue": v}, st.booleans()),
    st.builds(lambda v: {"intValue": str(v)}, st.integers(-(10**17) + 1, 10**17 - 1)),  # under 19 characters
    st.builds(lambda v: {"intValue": v}, st.integers(-(2**63), 2**63 - 1)),
    st.builds(lambda v: {"doubleValue": v}, st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53)),
)
scalars = st.one_of(
    CANONICAL_SCALARS,
    st.builds(lambda v: {"intValue": v}, int_members),
    st.builds(lambda v: {"doubleValue": v}, double_members),
    st.builds(lambda v: {"stringValue": v}, st.none() | st.integers()),
    st.builds(lambda v: {"bytesValue": v}, st.binary(max_size=6).map(lambda b: base64.b64encode(b).decode())),
    st.builds(lambda v: {"string_value": v}, texts),
    st.just({}),
    st.builds(lambda a, b: {**a, **b}, CANONICAL_SCALARS, CANONICAL_SCALARS),
)


def _values(element: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(element, max_size=3)


nested = st.deferred(lambda: st.one_of(
    scalars, st.none(),
    st.builds(lambda v: {"arrayValue": {"values": v}}, _values(scalars)),
    st.builds(lambda v: {"kvlistValue": {"values": v}}, _values(st.fixed_dictionaries({"key": texts, "value": scalars}))),
))
values = st.one_of(
    scalars,
    st.builds(lambda v: {"arrayValue": {"values": v}}, _values(nested)),
    st.builds(lambda v: {"kvlistValue": {"values": v}}, _values(st.fixed_dictionaries({"key": texts}, optional={"value": nested}))),
    st.builds(lambda: {"arrayValue": {}}), st.builds(lambda: {"arrayValue": {"values": None}}),
)
KEYS = ["gen_ai.operation.name", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "error.type",
        "umbraco.ai.user.id", "user.id", "service.name", "exception.type", "exception.message", "k"]
keys = st.sampled_from(KEYS) | texts


def mostly(canonical: st.SearchStrategy, other: st.SearchStrategy, weight: int = 3) -> st.SearchStrategy:
    """`canonical` `weight` times as often as `other`: one odd part sends the whole body to the general path."""
    return st.integers(0, weight).flatmap(lambda pick: other if pick == 0 else canonical)


canonical_values = st.one_of(
    CANONICAL_SCALARS,
    st.builds(lambda v: {"arrayValue": {"values": v}}, _values(CANONICAL_SCALARS)),
    st.builds(lambda v: {"kvlistValue": {"values": v}}, _values(st.fixed_dictionaries({"key": texts, "value": CANONICAL_SCALARS}))),
)
canonical_attribute_lists = st.lists(st.fixed_dictionaries({"key": keys, "value": CANONICAL_SCALARS}), max_size=6)
attribute_lists = st.lists(
    mostly(
        st.fixed_dictionaries({"key": keys, "value": canonical_values}),
        st.one_of(
            st.fixed_dictionaries({"key": keys, "value": values}),
            st.fixed_dictionaries({"key": keys}),
            st.fixed_dictionaries({"key": keys, "value": values, "extra": st.just(1)}),
            st.fixed_dictionaries({"key": st.integers(), "value": values}),
        ),
        weight=15,
    ),
    max_size=6,
)
events = st.lists(st.fixed_dictionaries(
    {"name": st.sampled_from(["exception", "other"]), "attributes": attribute_lists},
    optional={"timeUnixNano": times, "droppedAttributesCount": st.integers(0, 3)},
), max_size=2)
statuses = st.one_of(
    st.just({}), st.fixed_dictionaries({}, optional={"code": st.sampled_from([0, 1, 2, "STATUS_CODE_ERROR", "2", "x", 2.0, None]),
                                                      "message": texts | st.none()}),
    st.none(), st.just("x"),
)
CANONICAL_SPAN = {
    "parentSpanId": hex_ids, "name": texts, "kind": st.sampled_from([1, 3]),
    "startTimeUnixNano": st.integers(0, 2**64 - 1).map(str), "endTimeUnixNano": st.integers(0, 2**64 - 1).map(str),
    "attributes": attribute_lists, "events": events, "status": st.sampled_from([{}, {"code": 2, "message": "m"}, {"code": 1}]),
}
ODD_SPAN = {
    "parent_span_id": hex_ids, "trace_id": hex_ids, "name": texts | st.none() | st.integers(),
    "kind": st.sampled_from([1, 3, "SPAN_KIND_CLIENT", None]), "flags": st.integers(0, 2**70), "traceState": texts,
    "startTimeUnixNano": times, "endTimeUnixNano": times, "attributes": attribute_lists | st.none(),
    "events": events | st.none(), "status": statuses, "droppedAttributesCount": st.integers(0, 2**70),
    "links": st.lists(st.fixed_dictionaries({"traceId": hex_ids, "spanId": hex_ids}, optional={"attributes": attribute_lists}), max_size=1),
    "unknownField": st.integers(),
}
spans = mostly(
    st.fixed_dictionaries({"traceId": hex_ids, "spanId": hex_ids}, optional=CANONICAL_SPAN),
    st.builds(lambda span, odd: {**span, **odd}, st.fixed_dictionaries({"traceId": hex_ids, "spanId": hex_ids}, optional=CANONICAL_SPAN),
              st.fixed_dictionaries({}, optional=ODD_SPAN)),
)
resource_spans = mostly(
    st.fixed_dictionaries({}, optional={
        "resource": mostly(st.fixed_dictionaries({}, optional={"attributes": attribute_lists}), st.none(), weight=8),
        "scopeSpans": st.lists(st.fixed_dictionaries({}, optional={
            "scope": st.fixed_dictionaries({}, optional={"name": mostly(texts, st.none(), weight=8), "version": texts}),
            "spans": st.lists(spans, min_size=1, max_size=4),
        }), min_size=1, max_size=2),
    }),
    st.just({"scope_spans": []}),
    weight=8,
)
documents = st.fixed_dictionaries({"resourceSpans": st.lists(resource_spans, min_size=1, max_size=2)})


def _canonical_span(trace: str, span: str, start: int, attributes: list, events: list, status: dict) -> dict:
    return {"traceId": trace, "spanId": span, "name": "chat", "kind": 3, "startTimeUnixNano": str(start),
            "endTimeUnixNano": str(start + 5), "attributes": attributes, "events": events, "status": status}


canonical_documents = st.builds(
    lambda resource, spans: {"resourceSpans": [{"resource": {"attributes": resource},
                                                "scopeSpans": [{"scope": {"name": "s", "version": "1"}, "spans": spans}]}]},
    canonical_attribute_lists,
    st.lists(st.builds(
        _canonical_span, st.text(HEX, min_size=32, max_size=32), st.text(HEX, min_size=16, max_size=16),
        st.integers(10**18, 2 * 10**18), canonical_attribute_lists,
        st.lists(st.fixed_dictionaries({"name": st.sampled_from(["exception", "x"]), "attributes": canonical_attribute_lists}), max_size=2),
        st.sampled_from([{}, {"code": 2, "message": "bad"}, {"code": "STATUS_CODE_OK"}]),
    ), min_size=1, max_size=4),
)


@SETTINGS
@given(documents, st.booleans())
def test_a_body_the_canonical_path_takes_decodes_as_the_general_path_decodes_it(document, ascii_only):
    _assert_agree(json.dumps(document, ensure_ascii=ascii_only).encode(), must_take=False)


@SETTINGS
@given(canonical_documents)
def test_the_canonical_form_takes_the_canonical_path(document):
    _assert_agree(json.dumps(document, ensure_ascii=False).encode(), must_take=True)


def test_what_the_opentelemetry_sdk_exports_takes_the_canonical_path():
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "site", "replicas": 3}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("scope", "1.0")
    with tracer.start_as_current_span("request", attributes={"umbraco.ai.user.id": "u-1"}) as request:
        with tracer.start_as_current_span("chat gpt-4o", links=[Link(request.get_span_context(), {"n": 1})], attributes={
            "gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 12, "temperature": 0.5, "stream": True,
            "gen_ai.response.finish_reasons": ["stop"], "sizes": [1, 2], "weights": [0.5], "flags": [True],
        }) as span:
            span.add_event("first token", {"at": 3})
            span.record_exception(ValueError("rate limited"))
            span.set_status(Status(StatusCode.ERROR, "rate limited"))
    body = encode_spans(memory.get_finished_spans()).to_json().encode()
    records = codec._decode_canonical(body)
    assert records is not None and len(records) == 2
    assert records[0].exception() == ("ValueError", "rate limited")
    _assert_agree(body, must_take=True)


def test_the_benchmark_bodies_take_the_canonical_path():
    template = build_templates(3, 1, spans_per_request=64)["application/json"][0]
    _assert_agree(fresh_body(template, IdSource(1, 1)), must_take=True)


CHAT = {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "chat", "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000000000000005"}


def _body(span_fields: dict | None = None, document: dict | None = None) -> bytes:
    span = {**CHAT, **(span_fields or {})}
    return json.dumps(document or {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}).encode()


def _attribute(value: object) -> bytes:
    return _body({"attributes": [{"key": "k", "value": value}]})


@pytest.mark.parametrize(
    ("label", "body"),
    [
        ("snake_case span fields", _body({"trace_id": "ab" * 16})),
        ("snake_case document", _body(document={"resource_spans": []})),
        ("an unknown span field", _body({"somethingNew": 1})),
        ("a null name", _body({"name": None})),
        ("a time as a float", _body({"startTimeUnixNano": 1.7e18})),
        ("a time that is not a number", _body({"startTimeUnixNano": "soon"})),
        ("a status code that is not one", _body({"status": {"code": "x"}})),
        ("bytesValue", _attribute({"bytesValue": "AAE="})),
        ("two members", _attribute({"stringValue": "a", "intValue": "1"})),
        ("a null stringValue", _attribute({"stringValue": None})),
        ("a long intValue string", _attribute({"intValue": "12345678901234567890"})),
        ("an intValue string with a space", _attribute({"intValue": " 12"})),
        ("an intValue past 64 bits", _attribute({"intValue": 2**63})),
        ("an intValue as a float", _attribute({"intValue": 5.0})),
        ("a doubleValue as a string", _attribute({"doubleValue": "NaN"})),
        ("a doubleValue past the float range", _body().replace(b'"name"', b'"attributes": [{"key": "k", "value": {"doubleValue": 1e400}}], "name"')),
        ("an array inside an array", _attribute({"arrayValue": {"values": [{"arrayValue": {"values": []}}]}})),
        ("an attribute without a key", _body({"attributes": [{"value": {"stringValue": "x"}}]})),
        ("invalid UTF-8", _body({"name": "x"}).replace(b'"x"', b'"\xff"')),
        ("not JSON", b"{not json"),
        ("not an object", b"[1, 2]"),
    ],
)
def test_other_bodies_go_to_the_general_path(label, body):
    assert codec._decode_canonical(body) is None
    # ... where decode_json gives the general path's answer: records, or a 400 naming the problem.
    try:
        answer = [_view(record) for record in codec.decode_json(body)]
    except MalformedRequest as error:
        answer = f"400: {error}"
    assert answer == _general(body)
