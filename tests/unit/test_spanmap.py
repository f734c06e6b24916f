"""The compiled decode-and-map (ingest.fastmap over ingest/_spanmap.c) against the Python path.

For every body the compiled pass either answers exactly what
`codec.decode_protobuf` + `map_records` give, or returns None (the service
then takes the Python path). The usual shapes must be answered, so the
compiled pass cannot pass these tests by always handing bodies back.
"""

from __future__ import annotations

import random
import time

import msgspec
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from ingest import codec, fastmap
from ingest.config import IngestConfig
from ingest.errors import MalformedRequest
from ingest.mapping import Mapper
from ingest.pipeline import map_records

pytestmark = pytest.mark.skipif(not fastmap.AVAILABLE, reason="ingest._spanmap is not built")

NOW = time.time_ns()


def value(v: object) -> AnyValue:
    if isinstance(v, AnyValue):
        return v
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    if isinstance(v, bytes):
        return AnyValue(bytes_value=v)
    if isinstance(v, list):
        out = AnyValue()
        out.array_value.values.extend(value(x) for x in v)
        return out
    if isinstance(v, dict):
        out = AnyValue()
        out.kvlist_value.values.extend(KeyValue(key=k, value=value(x)) for k, x in v.items())
        return out
    if v is None:
        return AnyValue()
    return AnyValue(string_value=str(v))


def span(attributes: dict | list, *, status: int = 0, events: list | None = None, **fields: object) -> Span:
    pairs = attributes.items() if isinstance(attributes, dict) else attributes
    defaults = {
        "trace_id": bytes(range(1, 17)),
        "span_id": random.randbytes(8),
        "parent_span_id": b"\x09" * 8,
        "name": "chat gpt-4o",
        "start_time_unix_nano": NOW - 2_000_000_000,
        "end_time_unix_nano": NOW - 1_000_000_000,
    }
    defaults.update(fields)
    out = Span(attributes=[KeyValue(key=k, value=value(v)) for k, v in pairs], status=Status(code=status), **defaults)
    for name, event_attributes in events or ():
        event = out.events.add(name=name)
        event.attributes.extend(KeyValue(key=k, value=value(v)) for k, v in event_attributes.items())
    return out


def body(*groups: tuple[dict, str, list[Span]]) -> bytes:
    """(resource attributes, scope name, spans) per resource."""
    request = ExportTraceServiceRequest()
    for resource, scope, spans in groups:
        resource_spans = request.resource_spans.add()
        resource_spans.resource.attributes.extend(KeyValue(key=k, value=value(v)) for k, v in resource.items())
        scope_spans = resource_spans.scope_spans.add()
        scope_spans.scope.name = scope
        scope_spans.scope.version = "1.0"
        scope_spans.spans.extend(spans)
    return request.SerializeToString()


CHAT = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"}


def _record(r: codec.SpanRecord) -> tuple:
    return (
        r.trace_id, r.span_id, r.parent_span_id, r.name, r.start_ns, r.end_ns, r.status_code,
        r.resource.payload, r.scope.name, r.scope.version, r.scope.payload, r.payload,
    )


def python_path(mapper: Mapper, data: bytes) -> tuple | None:
    """The Python path's result in comparable form, or None when it refuses the body or rejects a call."""
    try:
        records = codec.decode_protobuf(data)
    except MalformedRequest:
        return None
    mapped, rejections = map_records(mapper, records)
    if rejections:
        return None
    return _comparable(mapped.facts, mapped.candidates, len(records))


def _comparable(facts, candidates, spans) -> tuple:
    return (
        [msgspec.structs.astuple(f) for f in facts],
        [
            (_record(c.call.record), c.call.capability, c.call.operation, c.call.has_tokens, c.call.exception,
             c.own_context, c.resource_context, c.key)
            for c in candidates
        ],
        spans,
    )


def compiled_path(mapper: Mapper, data: bytes) -> tuple | None:
    result = fastmap.CompiledMapper(mapper).map(data)
    return None if result is None else _comparable(*result)


@pytest.fixture
def mapper() -> Mapper:
    return Mapper(IngestConfig(ignored_scopes=("ignored.scope",)))


def assert_answered_alike(mapper: Mapper, data: bytes) -> tuple:
    compiled = compiled_path(mapper, data)
    assert compiled is not None, "the compiled pass handed a usual body back"
    assert compiled == python_path(mapper, data)
    return compiled


def assert_handed_back(mapper: Mapper, data: bytes) -> None:
    assert compiled_path(mapper, data) is None


def test_a_usual_export_is_answered_as_the_python_path_does(mapper):
    tokens = {"gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 30}
    tagged = {"umbraco.ai.profile.id": "p-1", "umbraco.ai.user.id": "u-1", "user.name": "Ann"}
    data = body(
        (
            {"service.name": "shop", "umbraco.ai.entity.type": "document"},
            "opentelemetry.instrumentation.openai_v2",
            [
                span(CHAT | tokens),
                span(CHAT | tagged | {"gen_ai.usage.total_tokens": 0.0}),
                span({"http.method": "POST"} | tagged, name="POST /umbraco"),  # a plain span with context
                span({"http.method": "GET"}, parent_span_id=b""),  # a plain root span
                span({"gen_ai.operation.name": "embeddings", "llm.usage.prompt_tokens": 5}),
            ],
        ),
        ({}, "ignored.scope", [span(CHAT | tokens)]),  # not a call: its scope is ignored
        ({"service.name": "other"}, "x", [span({"llm.request.type": "completion"}, parent_span_id=b"")]),
    )
    facts, candidates, spans = assert_answered_alike(mapper, data)
    assert spans == 7 and len(facts) == 7
    assert [c[1] for c in candidates] == ["Chat", "Chat", "Embedding", "Chat"]
    assert [c[3] for c in candidates] == [True, False, True, False]
    assert candidates[1][5] == {"umbraco.ai.profile.id": "p-1", "umbraco.ai.user.id": "u-1", "user.name": "Ann"}
    assert candidates[0][6] == {"umbraco.ai.entity.type": "document"}
    assert facts[3][2] == "" and facts[3][5] is None


@pytest.mark.parametrize(
    "attributes",
    [
        {"openinference.span.kind": "LLM"},
        {"openinference.span.kind": "llm"},  # matched upper-cased
        {"gen_ai.operation.name": "CHAT"},  # matched lower-cased
        {"gen_ai.operation.name": "Chat.Completions"},
        {"gen_ai.operation.name": "invoke_agent"},  # not a model call
        {"gen_ai.operation.name": None},  # set without a value: not a call
        {"llm.request.type": "chat", "gen_ai.operation.name": "execute_tool"},  # the first operation key decides
        {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": -4, "llm.usage.prompt_tokens": 9},
        {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 0, "llm.usage.prompt_tokens": 9},
        {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": True, "llm.usage.prompt_tokens": 9},
        {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 2.5, "gen_ai.usage.output_tokens": 2e18},
        {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": float("nan"), "llm.token_count.prompt": 3.0},
        {"gen_ai.operation.name": "chat", "gen_ai.usage.total_tokens": [1, 2], "llm.token_count.total": 7},
        {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 2**63 - 1},
        {"gen_ai.operation.name": "chat", "gen_ai.usage.output_tokens": 1},
        {"gen_ai.operation.name": "chat", "gen_ai.usage.output_tokens": 1.0, "gen_ai.usage.input_tokens": 0},
        {"gen_ai.operation.name": "chat", "user.id": "", "enduser.id": "e-7"},  # an empty value is no value
        {"gen_ai.operation.name": "chat", "error.type": "timeout"},
        [("gen_ai.operation.name", "chat"), ("user.id", "first"), ("user.id", "last")],  # the last entry wins
        [("gen_ai.operation.name", "chat"), ("gen_ai.usage.input_tokens", 0), ("gen_ai.usage.input_tokens", 8)],
        {"gen_ai.operation.name": "chat", "deep": [[[{"a": [1, "é", {"b": b"\x00"}]}]]], "日本": "語"},
    ],
)
def test_operation_tokens_and_context_are_read_as_the_python_path_reads_them(mapper, attributes):
    assert_answered_alike(mapper, body(({"service.name": "s"}, "scope", [span(attributes)])))


def test_a_failed_call_carries_its_exception_event(mapper):
    failed = span(
        CHAT,
        status=2,
        events=[("log", {"x": 1}), ("exception", {"exception.type": "RateLimitError", "exception.message": "slow down"})],
    )
    _, candidates, _ = assert_answered_alike(mapper, body(({}, "s", [failed])))
    assert candidates[0][4] == ("RateLimitError", "slow down")


def test_span_fields_as_sent(mapper):
    odd = span(CHAT, name="", status=-1, trace_state="k=v", kind=3, dropped_attributes_count=4, flags=257)
    assert_answered_alike(mapper, body(({}, "", [odd]), ({}, "", [])))
    assert_answered_alike(mapper, b"")  # no spans at all
    assert_answered_alike(mapper, body(({}, "s", [])))


@pytest.mark.parametrize(
    "attributes, fields",
    [
        # Values the Python path turns into text: left to it.
        ({"gen_ai.operation.name": "chat", "user.id": 42}, {}),
        ({"gen_ai.operation.name": "chat", "user.id": ["a"]}, {}),
        ({"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": "12"}, {}),
        ({"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": b"12"}, {}),
        ({"gen_ai.operation.name": 3}, {}),
        ({"gen_ai.operation.name": "chät"}, {}),
        # Calls the Python path rejects, with the words of the partial success.
        (CHAT, {"trace_id": b"\x00" * 16}),
        (CHAT, {"span_id": b"\x01" * 4}),
        (CHAT, {"parent_span_id": b"\x00" * 8}),
        (CHAT, {"start_time_unix_nano": 5}),
        (CHAT, {"end_time_unix_nano": NOW - 3_000_000_000}),
    ],
)
def test_unusual_values_and_rejected_calls_are_handed_back(mapper, attributes, fields):
    data = body(({}, "s", [span(attributes, **fields)]))
    assert_handed_back(mapper, data)


def test_a_call_past_retention_is_handed_back():
    mapper = Mapper(IngestConfig(), retention_days=1)
    old = span(CHAT, start_time_unix_nano=NOW - 3 * 86_400 * 10**9, end_time_unix_nano=NOW - 3 * 86_400 * 10**9 + 1)
    assert_handed_back(mapper, body(({}, "s", [old])))
    assert_answered_alike(mapper, body(({}, "s", [span(CHAT)])))


@pytest.mark.parametrize(
    "data",
    [
        b"\x0a\x05\x12\x03",  # truncated
        b"\x0a\xff\xff\xff\xff\x0f",  # a length past the end
        b"\x08",  # a varint with nothing after it
        b"\x0b\x0c",  # a group
    ],
)
def test_malformed_bodies_are_handed_back(mapper, data):
    assert_handed_back(mapper, data)


def test_invalid_utf8_anywhere_the_views_declare_a_string_is_handed_back(mapper):
    for attributes, fields in [
        ({"gen_ai.operation.name": "chat", "other": "\x00MARK"}, {}),  # an attribute value not read
        ({"gen_ai.operation.name": "chat", "MARK": "v"}, {}),  # an attribute key not read
        (CHAT, {"name": "MARK"}),  # the span name
    ]:
        data = body(({}, "s", [span(attributes, **fields)]))
        broken = data.replace(b"MARK", b"\xed\xa0\x80K")  # an encoded surrogate
        assert broken != data
        with pytest.raises(DecodeError):
            # The Python path's own views refuse it too (codec turns that into a 400).
            from ingest import wire

            wire.request_view().FromString(broken)
        assert_handed_back(mapper, broken)


def test_nesting_deeper_than_followed_is_handed_back(mapper):
    deep: object = "leaf"
    for _ in range(40):
        deep = [deep]
    data = body(({}, "s", [span({"gen_ai.operation.name": "chat", "deep": deep})]))
    assert_handed_back(mapper, data)


def test_more_context_keys_than_the_table_holds_leaves_everything_to_python():
    from ingest.config import ContextKeys

    many = ContextKeys(user_id=tuple(f"user.key{i}" for i in range(200)))
    assert fastmap.compiled_mapper(Mapper(IngestConfig(context_keys=many))) is None
    assert fastmap.compiled_mapper(Mapper(IngestConfig())) is not None


_SAMPLE_KEYS = [
    "gen_ai.operation.name", "llm.request.type", "openinference.span.kind", "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens", "llm.usage.total_tokens", "error.type", "umbraco.ai.user.id", "user.id",
    "umbraco.ai.profile.alias", "service.name", "http.route", "gen_ai.request.model",
]
_SAMPLE_VALUES = st.one_of(
    st.sampled_from(["chat", "CHAT", "embeddings", "LLM", "", "x", "completion", "invoke_agent"]),
    st.integers(min_value=-1, max_value=2),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
    st.text(max_size=6),
    st.binary(max_size=4),
    st.lists(st.integers(0, 9), max_size=2),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spans=st.lists(
        st.tuples(
            st.lists(st.tuples(st.sampled_from(_SAMPLE_KEYS), _SAMPLE_VALUES), max_size=6),
            st.sampled_from([0, 1, 2]),
            st.sampled_from([b"", b"\x00" * 8, b"\x07" * 8, b"\x05" * 3]),
        ),
        max_size=5,
    ),
    cut=st.integers(min_value=0, max_value=4000),
    flip=st.integers(min_value=0, max_value=4000),
)
def test_random_exports_and_corruptions_agree_with_the_python_path(spans, cut, flip):
    mapper = Mapper(IngestConfig(ignored_scopes=("ignored.scope",)))
    data = body(({"service.name": "s", "user.id": "r"}, "scope", [span(a, status=s, parent_span_id=p) for a, s, p in spans]))
    for candidate in (data, data[:cut], data[:flip] + bytes([data[flip] ^ 0x5A]) + data[flip + 1 :] if flip < len(data) else data):
        compiled = compiled_path(mapper, candidate)
        if compiled is not None:
            assert compiled == python_path(mapper, candidate)


def _staged(mapper: Mapper, data: bytes, versions, contexts, exceptions):
    from ingest.mapping import ModelCall
    from ingest.store import StagedCall

    _, candidates, _ = fastmap.CompiledMapper(mapper).map(data)
    staged = []
    for candidate, version, context, exception in zip(candidates, versions, contexts, exceptions):
        call = candidate.call
        call = ModelCall(call.record, call.capability, call.operation, call.has_tokens, exception)
        staged.append(StagedCall(call, version, context))
    return staged


def test_compiled_rows_are_the_bytes_protobuf_row_writes(mapper):
    from clickhouse import staging

    spans = [span(CHAT, parent_span_id=p) for p in (b"\x09" * 8, b"", b"\x01" * 8, b"\x02" * 8)]
    data = body(({"service.name": "shop", "other": "x" * 300}, "scope-ü", spans[:2]), ({}, "", spans[2:]))
    contexts = [
        ("p-1", "alias", "u-1", "Ann", "ft", "fi", "ei", "et"),
        ("",) * 8,
        ("", "", "ü-user", "", "", "", "", "x" * 200),
        ("a", "", "", "", "", "", "", ""),
    ]
    exceptions = [("", ""), ("RateLimitError", "slow down"), ("", "ünïcode message " * 20), ("T", "")]
    staged = _staged(mapper, data, [0, 1, 300, 2**40], contexts, exceptions)
    assert len(staged) == 4
    expected = b"".join(staging.protobuf_row(s) for s in staged)
    assert fastmap.compiled_rows(staged) == expected
    assert staging.protobuf_body(staged) == expected
    assert fastmap.compiled_rows([]) == b""


def test_compiled_rows_refuse_what_protobuf_row_cannot_encode(mapper):
    data = body(({}, "s", [span(CHAT)]))
    (good,) = _staged(mapper, data, [1], [("",) * 8], [("", "")])
    from ingest.store import StagedCall

    with pytest.raises(TypeError):
        fastmap.compiled_rows([StagedCall(good.call, 1, ("",) * 7)])
    with pytest.raises(UnicodeEncodeError):
        fastmap.compiled_rows([StagedCall(good.call, 1, ("\ud800",) + ("",) * 7)])
