"""Spans exported by the OpenTelemetry SDK's own OTLP/HTTP exporters land as operation rows.

A real HTTP server on a free loopback port, embedded ClickHouse, and every
mapped column compared with the value the test put on the span.
"""

from __future__ import annotations

import pytest
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests.support.otel import ENCODINGS, Recorder, export, http_exporter, ids

START = 1_735_689_600_123_456_789  # 2025-01-01T00:00:00.123456789Z
RESOURCE = {"service.name": "checkout-site", "umbraco.ai.entity.type": "document", "deployment.environment": "test"}

CHAT_ATTRIBUTES = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "Az.AI.OpenAI",
    "gen_ai.request.model": "gpt-4o",
    "gen_ai.response.model": "gpt-4o-2024-08-06",
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.output_tokens": "345",  # numbers may arrive as strings
    "gen_ai.usage.total_tokens": 1600,  # the emitter's total wins over input + output
    "gen_ai.usage.cache_read.input_tokens": 1000,
    "gen_ai.usage.cache_creation.input_tokens": 7,
    "gen_ai.usage.reasoning.output_tokens": 64,
    "gen_ai.request.stream": True,
    "gen_ai.conversation.id": "conv-42",
    "server.address": "https://my-resource.openai.azure.com/openai/deployments/x",
    "error.type": "rate_limit_exceeded",
    "umbraco.ai.profile.id": "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
    "umbraco.ai.profile.alias": "content-writer",
    "umbraco.ai.user.id": "8d9c7a51-0000-4000-8000-00000000beef",
    "umbraco.ai.user.name": "Ada Editor",
    "umbraco.ai.feature.type": "prompt",
    "umbraco.ai.feature.id": "summarise",
    "umbraco.ai.entity.id": "1057",
    "gen_ai.request.temperature": 0.25,
    "gen_ai.response.finish_reasons": ["length"],
}


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_sdk_exports_become_rows_with_every_column_mapped(service, encoding, gzip):
    recorder = Recorder(RESOURCE)
    tracer = recorder.tracer("Umbraco.AI", "17.1.0")
    with tracer.start_as_current_span("POST /umbraco/management/api/v1/ai", start_time=START - 10) as request_span:
        chat = tracer.start_span("chat gpt-4o", kind=SpanKind.CLIENT, start_time=START, attributes=CHAT_ATTRIBUTES)
        chat.set_status(Status(StatusCode.ERROR, "429 Too Many Requests"))
        chat.end(end_time=START + 1_234_567_890)
        embeddings = tracer.start_span(
            "embeddings text-embedding-3-small",
            start_time=START + 2_000_000_000,
            attributes={
                "gen_ai.operation.name": "embeddings",
                "gen_ai.system": "openai",
                "gen_ai.request.model": "text-embedding-3-small",
                "gen_ai.usage.input_tokens": 42,
            },
        )
        embeddings.end(end_time=START + 2_000_000_000 + 5_000_000)
        tracer.start_span("invoke_agent writer", start_time=START, attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.usage.input_tokens": 999,
        }).end(end_time=START + 3_000_000_000)
    spans = recorder.take()
    export(http_exporter(f"{service.url}/v1/traces", encoding, gzip), spans)

    rows = service.query(
        "SELECT *, toUnixTimestamp64Nano(timestamp) AS ts_ns FROM operations WHERE sign = 1 ORDER BY timestamp"
    )
    assert [row["operation"] for row in rows] == ["chat", "embeddings"], "agent and HTTP spans are not operations"
    chat_span = next(s for s in spans if s.name == "chat gpt-4o")
    trace_id, span_id = ids(chat_span)
    chat_row = rows[0]
    assert chat_row["ts_ns"] == START
    assert (chat_row["trace_id"], chat_row["span_id"]) == (trace_id, span_id)
    assert chat_row["parent_span_id"] == ids(request_span)[1]
    assert chat_row["service_name"] == "checkout-site"
    assert (chat_row["scope_name"], chat_row["scope_version"]) == ("Umbraco.AI", "17.1.0")
    assert chat_row["span_name"] == "chat gpt-4o"
    assert chat_row["capability"] == "Chat"
    assert (chat_row["provider"], chat_row["provider_raw"]) == ("azure.ai.openai", "Az.AI.OpenAI")
    assert (chat_row["request_model"], chat_row["response_model"]) == ("gpt-4o", "gpt-4o-2024-08-06")
    assert chat_row["profile_id"] == "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
    assert chat_row["profile_alias"] == "content-writer"
    assert chat_row["user_id"] == "8d9c7a51-0000-4000-8000-00000000beef"
    assert chat_row["user_name"] == "Ada Editor"
    assert (chat_row["feature_type"], chat_row["feature_id"]) == ("prompt", "summarise")
    assert chat_row["entity_id"] == "1057"
    assert chat_row["entity_type"] == "document", "context falls back to the resource"
    assert (chat_row["input_tokens"], chat_row["output_tokens"], chat_row["total_tokens"]) == (1200, 345, 1600)
    assert (chat_row["cache_read_tokens"], chat_row["cache_write_tokens"], chat_row["reasoning_tokens"]) == (1000, 7, 64)
    assert chat_row["duration_ns"] == 1_234_567_890
    assert chat_row["succeeded"] is False
    assert chat_row["error_type"] == "rate_limit_exceeded"
    assert chat_row["error_message"] == "429 Too Many Requests"
    assert chat_row["streaming"] is True
    assert chat_row["conversation_id"] == "conv-42"
    assert chat_row["server_address"] == "my-resource.openai.azure.com"
    assert chat_row["attributes"]["gen_ai.request.temperature"] == "0.25"
    assert chat_row["attributes"]["gen_ai.response.finish_reasons"] == '["length"]'
    assert "gen_ai.usage.input_tokens" not in chat_row["attributes"], "mapped keys are not repeated in the map"

    embeddings_row = rows[1]
    assert embeddings_row["capability"] == "Embedding"
    assert (embeddings_row["provider"], embeddings_row["provider_raw"]) == ("openai", "openai")
    assert (embeddings_row["input_tokens"], embeddings_row["output_tokens"], embeddings_row["total_tokens"]) == (42, 0, 42)
    assert embeddings_row["succeeded"] is True and embeddings_row["error_type"] == ""
    assert embeddings_row["duration_ns"] == 5_000_000
    assert embeddings_row["profile_id"] == "", "context of a sibling span does not leak"
    assert embeddings_row["entity_type"] == "document"
