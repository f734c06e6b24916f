"""Mapping of single spans, one case per row of the contract's alias table.

Each case exports one span through the pipeline into embedded ClickHouse and
reads the row back: the field mapping runs in ClickHouse (the view that
clickhouse/mapping.py generates), the decisions in Python.
"""

from __future__ import annotations

import json
import time

import pytest

from google.protobuf.json_format import MessageToJson

from ingest.codec import decode_json, decode_protobuf
from ingest.config import ContextKeys, IngestConfig
from ingest.mapping import Mapper, SpanRejected
from tests.support.spans import START, export_message, new_trace, request, span, span_id


def mapped(pipeline, attributes, resource=None, **kwargs) -> dict:
    trace = new_trace()
    result = pipeline.send(request(span(attributes, trace=trace, **kwargs), resource=resource))
    assert result.rejected_spans == 0, result.error_message
    return pipeline.only(trace)


@pytest.mark.parametrize(
    ("key", "value", "capability"),
    [
        ("gen_ai.operation.name", "chat", "Chat"),
        ("gen_ai.operation.name", "text_completion", "Chat"),
        ("gen_ai.operation.name", "generate_content", "Chat"),
        ("gen_ai.operation.name", "embeddings", "Embedding"),
        ("gen_ai.operation.name", "speech_to_text", "SpeechToText"),
        ("gen_ai.operation.name", "image_generation", "Media"),
        ("gen_ai.operation.name", "moderation", "Moderation"),
        ("gen_ai.operation.name", "chat.completions", "Chat"),  # Semantic Kernel
        ("gen_ai.operation.name", "chat.streaming_completions", "Chat"),
        ("gen_ai.operation.name", "text.completions", "Chat"),
        ("gen_ai.operation.name", "text.streaming_completions", "Chat"),
        ("llm.request.type", "chat", "Chat"),  # OpenLLMetry before 2026
        ("llm.request.type", "completion", "Chat"),
        ("llm.request.type", "embedding", "Embedding"),
        ("openinference.span.kind", "LLM", "Chat"),
        ("openinference.span.kind", "EMBEDDING", "Embedding"),
    ],
)
def test_model_call_operations_are_operations(pipeline, key, value, capability):
    row = mapped(pipeline, {key: value})
    assert (row["capability"], row["operation"]) == (capability, value)


@pytest.mark.parametrize(
    "attributes",
    [
        {"gen_ai.operation.name": "invoke_agent", "gen_ai.usage.input_tokens": 10},
        {"gen_ai.operation.name": "create_agent"},
        {"gen_ai.operation.name": "invoke_workflow"},
        {"gen_ai.operation.name": "execute_tool"},
        {"gen_ai.operation.name": "retrieval"},
        {"gen_ai.operation.name": "orchestrate_tools"},  # Microsoft.Extensions.AI
        {"openinference.span.kind": "AGENT", "llm.token_count.prompt": 10},
        {"openinference.span.kind": "CHAIN"},
        {"openinference.span.kind": "TOOL"},
        {"openinference.span.kind": "RETRIEVER"},
        {"llm.request.type": "rerank"},
        {"http.request.method": "POST"},
        # The first operation key present decides, even when a later one says "chat".
        {"gen_ai.operation.name": "invoke_agent", "llm.request.type": "chat"},
    ],
)
def test_agents_tools_and_other_spans_are_not_operations(pipeline, attributes):
    trace = new_trace()
    assert pipeline.send(request(span(attributes, trace=trace))).accepted_operations == 0
    assert pipeline.rows(trace) == []


@pytest.mark.parametrize(
    ("attributes", "provider", "raw"),
    [
        ({"gen_ai.provider.name": "openai", "gen_ai.system": "anthropic"}, "openai", "openai"),  # first key wins
        ({"gen_ai.system": "Anthropic"}, "anthropic", "Anthropic"),  # deprecated name
        ({"llm.vendor": "OpenAI"}, "openai", "OpenAI"),  # OpenLLMetry
        ({"llm.provider": "azure"}, "azure", "azure"),  # OpenInference, not a known alias
        ({"llm.system": "MistralAI"}, "mistral_ai", "MistralAI"),
        ({"gen_ai.system": "az.ai.openai"}, "azure.ai.openai", "az.ai.openai"),
        ({"gen_ai.system": "az.ai.inference"}, "azure.ai.inference", "az.ai.inference"),
        ({"gen_ai.system": "vertex_ai"}, "gcp.vertex_ai", "vertex_ai"),
        ({"gen_ai.system": "gemini"}, "gcp.gemini", "gemini"),
        ({"gen_ai.system": "xai"}, "x_ai", "xai"),
        ({"gen_ai.system": "mistralai"}, "mistral_ai", "mistralai"),
        ({"gen_ai.system": "AWS"}, "aws.bedrock", "AWS"),
        ({"gen_ai.system": "bedrock"}, "aws.bedrock", "bedrock"),
        ({"gen_ai.provider.name": "microsoft-foundry"}, "microsoft-foundry", "microsoft-foundry"),  # Umbraco.AI id
        ({"gen_ai.provider.name": "google"}, "google", "google"),
        ({"gen_ai.provider.name": "amazon"}, "amazon", "amazon"),
        ({"gen_ai.provider.name": "", "gen_ai.system": "openai"}, "openai", "openai"),  # empty is absent
        ({}, "", ""),
    ],
)
def test_provider_aliases_and_normalisation(pipeline, attributes, provider, raw):
    row = mapped(pipeline, {"gen_ai.operation.name": "chat", **attributes})
    assert (row["provider"], row["provider_raw"]) == (provider, raw)


@pytest.mark.parametrize(
    ("attributes", "request_model", "response_model"),
    [
        ({"gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06"}, "gpt-4o", "gpt-4o-2024-08-06"),
        ({"llm.request.model": "gpt-4", "llm.response.model": "gpt-4-0613"}, "gpt-4", "gpt-4-0613"),
        ({"llm.request.model_name": "claude-3"}, "claude-3", ""),
        ({"llm.response.model_name": "claude-3-5-sonnet"}, "", "claude-3-5-sonnet"),
        # OpenInference: the requested model sits in the invocation parameters JSON,
        # llm.model_name is the model that answered.
        (
            {"llm.invocation_parameters": '{"model": "gpt-4o-mini", "temperature": 0}', "llm.model_name": "gpt-4o-mini-2024-07-18"},
            "gpt-4o-mini",
            "gpt-4o-mini-2024-07-18",
        ),
        ({"llm.model_name": "gpt-4o-mini-2024-07-18"}, "gpt-4o-mini-2024-07-18", "gpt-4o-mini-2024-07-18"),
        ({"embedding.model_name": "text-embedding-3-small"}, "text-embedding-3-small", ""),
        ({"llm.invocation_parameters": "not json", "embedding.model_name": "e5"}, "e5", ""),
    ],
)
def test_model_aliases(pipeline, attributes, request_model, response_model):
    row = mapped(pipeline, {"gen_ai.operation.name": "chat", **attributes})
    assert (row["request_model"], row["response_model"]) == (request_model, response_model)


TOKEN_COLUMNS = ("input_tokens", "output_tokens", "total_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5}, (10, 5, 15, 0, 0, 0)),
        ({"gen_ai.usage.prompt_tokens": 11, "gen_ai.usage.completion_tokens": 6}, (11, 6, 17, 0, 0, 0)),
        ({"llm.usage.prompt_tokens": 12, "llm.usage.completion_tokens": 7, "llm.usage.total_tokens": 20}, (12, 7, 20, 0, 0, 0)),
        # Microsoft.Extensions.AI 2024 - mid 2025
        ({"gen_ai.response.input_tokens": 13, "gen_ai.response.output_tokens": 8}, (13, 8, 21, 0, 0, 0)),
        # early Semantic Kernel, with -1 meaning unknown
        ({"gen_ai.response.prompt_tokens": -1, "gen_ai.response.completion_tokens": 9}, (0, 9, 9, 0, 0, 0)),
        ({"gen_ai.response.prompt_tokens": 14, "gen_ai.response.completion_tokens": -1}, (14, 0, 14, 0, 0, 0)),
        # OpenInference
        (
            {
                "llm.token_count.prompt": 100,
                "llm.token_count.completion": 30,
                "llm.token_count.total": 130,
                "llm.token_count.prompt_details.cache_read": 80,
                "llm.token_count.prompt_details.cache_write": 5,
                "llm.token_count.completion_details.reasoning": 12,
            },
            (100, 30, 130, 80, 5, 12),
        ),
        ({"gen_ai.usage.total_tokens": 99, "gen_ai.usage.input_tokens": 1}, (1, 0, 99, 0, 0, 0)),
        ({"gen_ai.usage.cache_read_input_tokens": 3, "gen_ai.usage.cache_creation_input_tokens": 4}, (0, 0, 0, 3, 4, 0)),
        ({"gen_ai.usage.cache_write.input_tokens": 2, "gen_ai.usage.reasoning_tokens": 1}, (0, 0, 0, 0, 2, 1)),
        # numbers as strings and doubles; negative totals are unknown
        ({"gen_ai.usage.input_tokens": "25", "gen_ai.usage.output_tokens": 5.0, "gen_ai.usage.total_tokens": -1}, (25, 5, 30, 0, 0, 0)),
        ({"gen_ai.usage.input_tokens": "lots", "gen_ai.usage.output_tokens": True}, (0, 0, 0, 0, 0, 0)),
        # an unusable first key gives way to the next one
        ({"gen_ai.usage.input_tokens": -1, "gen_ai.usage.prompt_tokens": 7}, (7, 0, 7, 0, 0, 0)),
    ],
)
def test_token_aliases(pipeline, attributes, expected):
    row = mapped(pipeline, {"gen_ai.operation.name": "chat", **attributes})
    assert tuple(row[column] for column in TOKEN_COLUMNS) == expected


@pytest.mark.parametrize(
    ("value", "count"),
    [(5, 5), ("5", 5), ("5.0", 5), (5.0, 5), ("1e3", 1000), (-1, 0), ("-1", 0), (2.5, 0), ("x", 0), (False, 0), ("", 0)],
)
def test_token_counts_as_any_type(pipeline, value, count):
    assert mapped(pipeline, {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": value})["input_tokens"] == count


def test_failure_from_status_with_exception_event(pipeline):
    row = mapped(
        pipeline, {"gen_ai.operation.name": "chat"}, status_code=2, status_message="", exception=("openai.NotFoundError", "model not found")
    )
    assert (row["succeeded"], row["error_type"], row["error_message"]) == (False, "openai.NotFoundError", "model not found")


@pytest.mark.parametrize("encoding", ["protobuf", "json", "json, general path"])
def test_the_exception_event_is_read_in_every_encoding(pipeline, encoding):
    trace = new_trace()
    # A bytes attribute sends an OTLP/JSON body down the general path (it is rewritten as a string).
    extra = {"blob": b"\x01"} if encoding == "json, general path" else {}
    message = export_message(
        span({"gen_ai.operation.name": "chat", **extra}, trace=trace, status_code=2, exception=("openai.RateLimitError", "slow down"))
    )
    if encoding == "protobuf":
        records = decode_protobuf(message.SerializeToString())
    else:  # proto3 JSON: base64 ids and enum names, which OTLP/JSON decoding also takes
        records = decode_json(MessageToJson(message).encode())
    assert pipeline.service.export(records).rejected_spans == 0
    row = pipeline.only(trace)
    assert (row["succeeded"], row["error_type"], row["error_message"]) == (False, "openai.RateLimitError", "slow down")


def test_failure_from_error_type_alone(pipeline):
    row = mapped(pipeline, {"gen_ai.operation.name": "chat", "error.type": "timeout"})
    assert (row["succeeded"], row["error_type"], row["error_message"]) == (False, "timeout", "")


def test_status_message_wins_over_exception_message(pipeline):
    row = mapped(pipeline, {"gen_ai.operation.name": "chat", "error.type": "500"}, status_code=2, status_message="server error", exception=("E", "boom"))
    assert (row["error_type"], row["error_message"]) == ("500", "server error")


def test_success_ignores_an_exception_event(pipeline):
    row = mapped(pipeline, {"gen_ai.operation.name": "chat"}, status_code=1, exception=("E", "handled"))
    assert (row["succeeded"], row["error_type"], row["error_message"]) == (True, "", "")


@pytest.mark.parametrize(
    ("attributes", "streaming"),
    [
        ({"gen_ai.request.stream": True}, True),
        ({"gen_ai.is_streaming": "true"}, True),
        ({"llm.is_streaming": False}, False),
        ({"gen_ai.request.stream": False, "gen_ai.is_streaming": True}, False),  # first key present decides
        ({"gen_ai.operation.name": "chat.streaming_completions"}, True),
        # OpenInference: only inside the invocation parameters
        ({"llm.invocation_parameters": '{"model": "gpt-4o", "stream": true}'}, True),
        ({"llm.invocation_parameters": '{"model": "gpt-4o", "stream": false}'}, False),
        ({"llm.invocation_parameters": '{"stream": true}', "llm.is_streaming": False}, False),
        ({}, False),
    ],
)
def test_streaming(pipeline, attributes, streaming):
    assert mapped(pipeline, {"gen_ai.operation.name": "chat", **attributes})["streaming"] is streaming


def test_conversation_and_server(pipeline):
    row = mapped(pipeline, {"gen_ai.operation.name": "chat", "session.id": "s-1", "server.address": "api.anthropic.com"})
    assert (row["conversation_id"], row["server_address"]) == ("s-1", "api.anthropic.com")
    sk = mapped(pipeline, {"gen_ai.operation.name": "chat.completions", "server.address": "https://api.openai.com/v1/"})
    assert sk["server_address"] == "api.openai.com", "Semantic Kernel sends a whole URL"
    both = mapped(pipeline, {"gen_ai.operation.name": "chat", "gen_ai.conversation.id": "c", "session.id": "s"})
    assert both["conversation_id"] == "c"


def test_service_scope_name_and_times(pipeline):
    row = mapped(pipeline, {"gen_ai.operation.name": "chat"}, resource={"service.name": "shop"}, name="chat gpt-4o", duration=1_234_567)
    assert (row["service_name"], row["scope_name"], row["scope_version"], row["span_name"]) == ("shop", "tests", "1.0", "chat gpt-4o")
    assert row["duration_ns"] == 1_234_567


@pytest.mark.parametrize(
    ("resource", "service"),
    [
        ({"host.name": "web-01", "os.type": "linux", "service.name": "shop"}, "shop"),  # not the first attribute
        ({"host.name": "web-01"}, ""),
        ({"service.name": 42}, ""),  # only a string names the service
        ({}, ""),
    ],
)
def test_service_name_is_the_resource_attribute_alone(pipeline, resource, service):
    row = mapped(pipeline, {"gen_ai.operation.name": "chat"}, resource=resource or {"": ""})
    assert row["service_name"] == service


def test_service_name_sent_twice_is_read_at_its_first_occurrence(pipeline):
    trace = new_trace()
    message = export_message(span({"gen_ai.operation.name": "chat"}, trace=trace), resource={"service.name": "first"})
    message.resource_spans[0].resource.attributes.add(key="service.name").value.string_value = "second"
    pipeline.send(message.SerializeToString())
    assert pipeline.only(trace)["service_name"] == "first"


def test_context_from_own_span_and_resource(pipeline):
    row = mapped(
        pipeline,
        {"gen_ai.operation.name": "chat", "umbraco.ai.profile.id": "p", "umbraco.ai.user.id": "u", "gen_ai.user": "alice"},
        resource={"service.name": "s", "umbraco.ai.feature.type": "agent", "umbraco.ai.user.name": "Ada"},
    )
    assert (row["profile_id"], row["user_id"], row["user_name"], row["feature_type"]) == ("p", "u", "Ada", "agent")


@pytest.mark.parametrize("key", ["user.id", "enduser.id", "gen_ai.user", "llm.user", "traceloop.association.properties.user_id"])
def test_other_emitters_user_keys(pipeline, key):
    assert mapped(pipeline, {"gen_ai.operation.name": "chat", key: "someone"})["user_id"] == "someone"


def test_context_keys_are_configurable(make_pipeline):
    custom = make_pipeline(context_keys=ContextKeys(profile_id=("app.tenant",), user_id=("app.account",)))
    row = mapped(custom, {"gen_ai.operation.name": "chat", "app.tenant": "t1", "app.account": "a1", "umbraco.ai.user.id": "ignored"})
    assert (row["profile_id"], row["user_id"]) == ("t1", "a1")


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"trace": "0" * 32}, "trace id"),
        ({"trace": "abcd"}, "trace id"),
        ({"span": "0" * 16}, "span id"),
        ({"span": ""}, "span id"),
        ({"parent": "abcd"}, "parent span id"),
        ({"start": 0}, "start time"),
        ({"start": 16_725_225_600 * 10**9}, "start time"),  # year 2500: beyond what DateTime64(9) holds
        ({"duration": -5}, "end time is before start time"),
    ],
)
def test_unusable_spans_are_rejected_with_a_reason(pipeline, kwargs, problem):
    options = {"trace": new_trace(), **kwargs}
    result = pipeline.send(request(span({"gen_ai.operation.name": "chat"}, **options)))
    assert (result.accepted_operations, result.rejected_spans) == (0, 1)
    assert problem in result.error_message


def test_spans_older_than_the_retention_period_are_rejected():
    mapper = Mapper(IngestConfig(), retention_days=30)
    now = time.time_ns()
    fresh, stale = decode_protobuf(
        request(
            span({"gen_ai.operation.name": "chat"}, trace=new_trace(), start=now - 29 * 86_400 * 10**9),
            span({"gen_ai.operation.name": "chat"}, trace=new_trace(), start=now - 31 * 86_400 * 10**9),
        )
    )
    oldest = mapper.oldest_start_ns()
    assert mapper.model_call(fresh, "Chat", "chat", oldest).record is fresh
    with pytest.raises(SpanRejected, match="older than the retention period"):
        mapper.model_call(stale, "Chat", "chat", oldest)
    assert Mapper(IngestConfig()).oldest_start_ns() == 0, "retention 0 keeps everything"


def test_remaining_attributes_are_strings_and_bounded(pipeline):
    row = mapped(
        pipeline,
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "m",
            "gen_ai.system": "openai",
            "flag": True,
            "count": 3,
            "zero": 0,
            "ratio": 0.5,
            "tags": ["a", 1, True],
            "nested": {"k": "v", "n": 2},
            "deep": {"k": [1, 2]},
            "blob": b"\x00\x01",
            "empty": "",
            "huge": "x" * 100_000,
        },
    )
    attributes = row["attributes"]
    assert attributes["flag"] == "true" and attributes["count"] == "3" and attributes["zero"] == "0" and attributes["ratio"] == "0.5"
    assert attributes["tags"] == '["a", 1, true]' and attributes["nested"] == '{"k": "v", "n": 2}'
    assert attributes["deep"] == '{"k": null}', "one level of nesting is kept"
    assert attributes["blob"] == "AAE=" and attributes["empty"] == ""
    assert len(attributes["huge"]) == 16_385 and attributes["huge"].endswith("…")
    assert not {"gen_ai.request.model", "gen_ai.operation.name", "gen_ai.system"} & set(attributes), "mapped keys have columns"


def _json_body(trace: str, attributes: dict) -> bytes:
    """One OTLP/JSON span; ints as intValue strings, the way OTLP/JSON writes them."""

    def value(v):
        if isinstance(v, bool):
            return {"boolValue": v}
        if isinstance(v, int):
            return {"intValue": str(v)}
        if isinstance(v, float):
            return {"doubleValue": v}
        return {"stringValue": v}

    span_json = {
        "traceId": trace,
        "spanId": span_id(),
        "name": "span",
        "startTimeUnixNano": str(START),
        "endTimeUnixNano": str(START + 1_000_000),
        "attributes": [{"key": k, "value": value(v)} for k, v in attributes.items()],
    }
    return json.dumps(
        {"resourceSpans": [{"resource": {}, "scopeSpans": [{"scope": {"name": "tests"}, "spans": [span_json]}]}]}
    ).encode()


# Counts that ClickHouse's mapping view reads differently from a plain float():
# Python decides the nested-call rule ("did this call report tokens?") on the
# same reading as the stored row, or an outer call storing 0 tokens would beat
# a leaf that has them.
@pytest.mark.parametrize(
    "tokens",
    [
        {"gen_ai.usage.input_tokens": 5},
        {"gen_ai.usage.input_tokens": "5"},
        {"gen_ai.usage.input_tokens": 5.0},
        {"gen_ai.usage.input_tokens": 2.5},
        {"gen_ai.usage.input_tokens": 10**18},  # the view's limit: stored as unknown
        {"gen_ai.usage.input_tokens": 10**18 - 1},  # rounds to 1e18 as a double, in both
        {"gen_ai.usage.input_tokens": 10**18 - 2**10},
        {"gen_ai.usage.output_tokens": "1e18"},
        {"gen_ai.usage.output_tokens": "1e3"},
        {"gen_ai.usage.input_tokens": " 5"},  # float() takes these four, ClickHouse does not
        {"gen_ai.usage.input_tokens": "5\n"},
        {"gen_ai.usage.input_tokens": "1_000"},
        {"gen_ai.usage.input_tokens": "\u0661"},
        {"gen_ai.usage.input_tokens": "nan"},
        {"gen_ai.usage.input_tokens": "inf"},
        {"gen_ai.usage.input_tokens": True},
        {"gen_ai.usage.input_tokens": -3},
        # the first usable alias decides: a reported 0 hides a later alias...
        {"gen_ai.usage.input_tokens": 0, "gen_ai.usage.prompt_tokens": 5},
        # ...an unusable one does not
        {"gen_ai.usage.input_tokens": -1, "gen_ai.usage.prompt_tokens": 5},
        {"gen_ai.usage.input_tokens": "x", "llm.token_count.prompt": "7"},
        {"gen_ai.usage.total_tokens": 3},
        {"gen_ai.usage.total_tokens": 0, "gen_ai.usage.input_tokens": 0},
        {"gen_ai.usage.total_tokens": 10**18, "gen_ai.usage.output_tokens": 0},
    ],
)
@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_reported_tokens_are_read_as_the_stored_row_reads_them(pipeline, tokens, encoding):
    trace = new_trace()
    attributes = {"gen_ai.operation.name": "chat", **tokens}
    if encoding == "protobuf":
        records = decode_protobuf(request(span(attributes, trace=trace)))
    else:
        records = decode_json(_json_body(trace, attributes))
    mapper = Mapper(IngestConfig())
    (record,) = records
    decided = mapper.model_call(record, *mapper.capability(record)).has_tokens
    result = pipeline.service.export(records)
    assert result.rejected_spans == 0, result.error_message
    row = pipeline.only(trace)
    stored = row["input_tokens"] + row["output_tokens"] + row["total_tokens"] > 0
    assert decided == stored, (decided, {c: row[c] for c in TOKEN_COLUMNS})
