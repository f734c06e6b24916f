"""Rows the compiled pass maps (ingest/_spanmap.c `write_row`) against the mapping view's rows.

For spans in its plain subset the compiled pass writes a call's `operations`
row itself and the writer inserts it straight into `operations`; every other
call is staged and mapped by incoming_spans_mv (clickhouse/mapping.py). Each
test stores the same calls both ways in embedded ClickHouse and compares the
rows column by column: the view is the reference. The tests also require the
usual spans to get a row, so that the compiled pass cannot pass them by
writing none.
"""

from __future__ import annotations

import math
import random

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import payloads
from clickhouse.operations import OperationStore
from ingest import conventions as c
from ingest import fastmap
from ingest.config import IngestConfig
from ingest.mapping import MAX_TIMESTAMP_NS, Mapper
from ingest.store import StagedCall
from tests.unit.test_spanmap import body, span

pytestmark = pytest.mark.skipif(not fastmap.AVAILABLE, reason="ingest._spanmap is not built")

CHAT = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o"}
# A context with every field set, some of it not ASCII: the writer's part of a direct row.
CONTEXT = ("p-1", "blog-writer", "u-1", "Zoë Ångström", "prompt", "summarise", "1234", "document")


@pytest.fixture(scope="module")
def compiled() -> fastmap.CompiledMapper:
    return fastmap.CompiledMapper(Mapper(IngestConfig()))


def calls_of(compiled: fastmap.CompiledMapper, data: bytes) -> list[StagedCall]:
    mapped = compiled.map(data)
    assert mapped is not None, "the compiled pass handed the body back"
    _, candidates, _ = mapped
    return [StagedCall(candidate.call, 3, CONTEXT) for candidate in candidates]


def stored_rows(database, calls: list[StagedCall]) -> list[dict]:
    client = database.client()
    client.command("TRUNCATE TABLE operations")
    OperationStore(database).stage(calls)
    result = client.query("SELECT * EXCEPT received_at FROM operations ORDER BY trace_id, span_id")
    return list(result.named_results())


def assert_rows_alike(database, calls: list[StagedCall]) -> list[dict]:
    """Store the calls through the view and then as direct rows; both give the same rows."""
    staged = [StagedCall(msgspec.structs.replace(s.call, row=None), s.version, s.context) for s in calls]
    through_view = stored_rows(database, staged)
    direct = stored_rows(database, [s for s in calls if s.call.row is not None])
    by_span = {(row["trace_id"], row["span_id"]): row for row in through_view}
    assert len(through_view) == len(calls)
    for row in direct:
        assert row == by_span[(row["trace_id"], row["span_id"])]
    return direct


def with_row(compiled, attributes: dict, **fields) -> StagedCall:
    (call,) = calls_of(compiled, body(({"service.name": "site"}, "scope", [span(attributes, **fields)])))
    return call


def test_the_benchmark_exports_are_all_mapped_as_the_view_maps_them(database, compiled):
    templates = payloads.build_templates(seed=7, count=2, spans_per_request=300)[payloads.PROTOBUF]
    ids = payloads.IdSource(run_tag=9, client=1)
    calls = [call for template in templates for call in calls_of(compiled, payloads.fresh_body(template, ids))]
    assert all(call.call.row is not None for call in calls)
    rows = assert_rows_alike(database, calls)
    assert len(rows) == 600
    assert any(not row["succeeded"] for row in rows)  # the failed calls have rows too
    assert any(row["cache_read_tokens"] for row in rows)


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"gen_ai.provider.name": "Azure_OpenAI"},  # a spelling the table renames, after ASCII lower-casing
        {"gen_ai.provider.name": "MyProvider"},  # one it only lower-cases
        {"gen_ai.provider.name": "", "gen_ai.system": "Vertex_AI"},  # empty counts as absent
        {"gen_ai.request.model": "", "llm.model_name": "m-after"},  # the list after the invocation parameters
        {"gen_ai.response.model": "gpt-4o-2024", "llm.model_name": "other"},
        {"gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 20},
        {"gen_ai.usage.input_tokens": -5, "gen_ai.usage.prompt_tokens": 7},  # negative: the next alias
        {"gen_ai.usage.input_tokens": 12.0, "gen_ai.usage.output_tokens": 2.5, "llm.usage.completion_tokens": 4},
        {"gen_ai.usage.input_tokens": 3, "gen_ai.usage.total_tokens": 100},
        {"gen_ai.usage.input_tokens": 2**53},
        {"gen_ai.usage.cache_read.input_tokens": "42", "gen_ai.usage.reasoning_tokens": "007"},
        {"gen_ai.usage.cache_write.input_tokens": "", "llm.token_count.prompt_details.cache_write": 9},
        {"gen_ai.usage.input_tokens": True, "gen_ai.usage.prompt_tokens": 5},  # a bool is no count
        {"gen_ai.usage.input_tokens": [1], "gen_ai.usage.prompt_tokens": 6},
        {"gen_ai.request.stream": True},
        {"gen_ai.request.stream": "Yes"},
        {"gen_ai.request.stream": 1},
        {"gen_ai.request.stream": 1.0},
        {"gen_ai.request.stream": "no", "gen_ai.is_streaming": True},  # the first present decides
        {"gen_ai.operation.name": "chat.streaming_completions"},
        {"gen_ai.conversation.id": "", "session.id": "s-1"},
        {"server.address": "api.openai.com", "server.port": 443},
        {"error.type": "timeout"},  # failed without a status: its message comes from the event
        {"temperature": 0.1, "top": 1.0, "big": 1e20, "small": 1e-6, "neg": -123.456, "third": 1 / 3},
        {"flag": False, "zero": 0, "minus": -(2**63), "empty": ""},
        {"list": ["stop", "length"], "mixed": ["a", 1, 2.5, True, False], "ints": [0, -1]},
        {"unicode": "Zoë 漢字 🙂", "umbraco.ai.user.name": "Ann"},
        {"long": "é" * 20_000},  # cut at 16,384 characters, with an ellipsis
        {"ascii": "x" * 16_384, "just_over": "y" * 16_385},
    ],
)
def test_plain_spans_are_mapped_as_the_view_maps_them(database, compiled, extra):
    call = with_row(compiled, {**CHAT, **extra}, status=0)
    if extra == {"error.type": "timeout"}:
        assert call.call.row is None  # its error message would come from the exception event
        return
    assert call.call.row is not None
    assert_rows_alike(database, [call])


def test_a_failed_call_with_its_error_on_the_span_is_mapped_as_the_view_maps_it(database, compiled):
    failed = span({**CHAT, "error.type": "429"}, status=2)
    failed.status.message = "429 Too Many Requests"
    (call,) = calls_of(compiled, body(({"service.name": "site"}, "scope", [failed])))
    assert call.call.row is not None
    (row,) = assert_rows_alike(database, [call])
    assert (row["succeeded"], row["error_type"], row["error_message"]) == (False, "429", "429 Too Many Requests")


@pytest.mark.parametrize(
    "extra",
    [
        {"llm.invocation_parameters": '{"model": "gpt-4o", "stream": true}'},  # the view reads its JSON
        {"server.address": "https://example.openai.azure.com/openai"},  # the view takes its domain()
        {"temperature": 1e-7},  # ClickHouse writes an exponent
        {"temperature": 1e21},
        {"temperature": -0.0},
        {"temperature": math.inf},
        {"bytes": b"\x00\x01"},
        {"list": {"a": 1}},
        {"list": []},
        {"list": ["a/b"]},  # toJSONString escapes the slash
        {"list": ['say "hi"']},
        {"list": ["é"]},
        {"list": [["nested"]]},
        {"gen_ai.usage.input_tokens": 2**53 + 1},  # not exact as a Float64
        {"gen_ai.usage.cache_read.input_tokens": " 42"},  # text other than digits
        {"gen_ai.usage.cache_read.input_tokens": "1e3"},
        {"unset": None},
    ],
)
def test_spans_outside_the_plain_subset_are_left_to_the_view(database, compiled, extra):
    call = with_row(compiled, {**CHAT, **extra})
    assert call.call.row is None
    assert_rows_alike(database, [call])


def test_a_key_sent_twice_is_left_to_the_view(database, compiled):
    call = with_row(compiled, [*CHAT.items(), ("http.route", "/a"), ("http.route", "/b")])
    assert call.call.row is None


def test_a_resource_without_a_string_service_name_still_gets_a_row(database, compiled):
    data = body(({"service.name": 12}, "scope", [span(CHAT)]), ({}, "other", [span(CHAT)]))
    calls = calls_of(compiled, data)
    assert all(call.call.row is not None for call in calls)
    assert_rows_alike(database, calls)


# --- random spans ----------------------------------------------------------------

_KEYS = sorted(
    {*c.PROVIDER, *c.REQUEST_MODEL_BEFORE_INVOCATION, *c.REQUEST_MODEL_AFTER_INVOCATION, *c.RESPONSE_MODEL,
     *c.INPUT_TOKENS[:2], *c.OUTPUT_TOKENS[:2], *c.TOTAL_TOKENS[:1], *c.CACHE_READ_TOKENS[:1], *c.STREAMING,
     *c.CONVERSATION, c.SERVER_ADDRESS, c.ERROR_TYPE, "umbraco.ai.user.id", "http.route", "k"}
)
_TOKEN_KEYS = {key for aliases in (c.INPUT_TOKENS, c.OUTPUT_TOKENS, c.TOTAL_TOKENS) for key in aliases}
_scalars = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", "0", "12", "true", "YES", "OpenAI", "Azure_OpenAI", "x://y", "a/b"]),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=0, max_value=5000),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, 1.0, 0.5, 1e-6, 9.5e-7, 1e15, 1e17, 2.0**70, 1e21 - 2**17, 5e-324]),
    st.booleans(),
)
_values = st.one_of(_scalars, st.lists(_scalars, max_size=3))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    spans=st.lists(
        st.tuples(
            st.dictionaries(st.sampled_from(_KEYS), _values, max_size=8),
            st.sampled_from([0, 1, 2]),
            st.text(max_size=6),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_random_spans_are_mapped_as_the_view_maps_them(database, compiled, spans):
    exported = []
    for attributes, status, message in spans:
        one = span({"gen_ai.operation.name": "chat", **attributes}, status=status)
        one.status.message = message
        exported.append(one)
    data = body(({"service.name": "site"}, "scope", exported))
    if compiled.map(data) is None:
        return  # handed back whole (a token count sent as text): the Python path stages it
    assert_rows_alike(database, calls_of(compiled, data))


def test_random_spans_get_rows_often(compiled):
    """The plain subset is most spans, not a corner: guards the test above against testing nothing."""
    rng = random.Random(3)
    with_rows = 0
    for _ in range(200):
        attributes = {key: rng.choice(["a", 1, 2.5, True, ["x"]]) for key in rng.sample(_KEYS, 6)}
        attributes.pop(c.ERROR_TYPE, None)
        for key in set(attributes) & _TOKEN_KEYS:
            attributes[key] = rng.randrange(1000)  # text counts send the whole export to the Python path
        if "umbraco.ai.user.id" in attributes:
            attributes["umbraco.ai.user.id"] = "u-1"  # so does context that is not text
        (call,) = calls_of(compiled, body(({}, "s", [span({"gen_ai.operation.name": "chat", **attributes})])))
        with_rows += call.call.row is not None
    assert with_rows > 150


def test_a_direct_row_keeps_the_span_start_and_the_writer_version(database, compiled):
    start = MAX_TIMESTAMP_NS - 10**9
    call = with_row(compiled, CHAT, start_time_unix_nano=start, end_time_unix_nano=start + 5)
    assert_rows_alike(database, [call])
    result = database.client().query("SELECT toUnixTimestamp64Nano(timestamp), version, duration_ns, user_name FROM operations")
    assert result.result_rows == [(start, 3, 5, "Zoë Ångström")]


def test_a_native_block_refuses_rows_that_do_not_fit_its_columns(compiled):
    from clickhouse import staging

    call = with_row(compiled, CHAT)
    assert fastmap.native_block([call], staging.DIRECT_COLUMNS)[:2] == bytes((len(staging.DIRECT_COLUMNS), 1))
    cut = StagedCall(msgspec.structs.replace(call.call, row=call.call.row[:-1]), 1, CONTEXT)
    with pytest.raises(ValueError, match="does not match"):
        fastmap.native_block([cut], staging.DIRECT_COLUMNS)
    with pytest.raises(ValueError, match="no Native encoding"):
        fastmap.native_block([call], (("x", "Decimal(9, 2)"),) + staging.DIRECT_COLUMNS[1:])
    with pytest.raises(TypeError, match="8 context fields"):
        fastmap.native_block([StagedCall(call.call, 1, CONTEXT[:7])], staging.DIRECT_COLUMNS)
    with pytest.raises(OverflowError):
        fastmap.native_block([StagedCall(call.call, 2**32, CONTEXT)], staging.DIRECT_COLUMNS)
