"""OTLP/HTTP protocol behaviour against a running server: every answer of the contract's table."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest
import requests
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

PROTO = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}
LIMIT = 64 * 1024


@pytest.fixture
def small_limit_service(make_service):
    return make_service(max_body_bytes=LIMIT)


def post(service, body, headers):
    return requests.post(f"{service.url}/v1/traces", data=body, headers=headers, timeout=10)


def chat_request(trace="5b8efff798038103d269b633813fc60c", span="eee19b7ec3c1b174", start=1_700_000_000_000_000_000, end=None):
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name").value.string_value = "svc"
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "tests"
    chat = scope_spans.spans.add(
        trace_id=bytes.fromhex(trace),
        span_id=bytes.fromhex(span) if span else b"",
        name="chat m",
        start_time_unix_nano=start,
        end_time_unix_nano=end if end is not None else start + 1000,
    )
    chat.attributes.add(key="gen_ai.operation.name").value.string_value = "chat"
    chat.attributes.add(key="gen_ai.usage.input_tokens").value.int_value = 3
    return request


def status_of(response) -> status_pb2.Status:
    if response.headers["Content-Type"].startswith("application/x-protobuf"):
        return status_pb2.Status.FromString(response.content)
    body = response.json()
    return status_pb2.Status(code=body["code"], message=body["message"])


def stored(service) -> int:
    return service.query("SELECT sum(sign) AS n FROM operations")[0]["n"]


def test_malformed_protobuf_is_400_with_a_protobuf_status(service):
    response = post(service, b"\x0a\xff\xff\xff\xff\x0f garbage", PROTO)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/x-protobuf"
    status = status_of(response)
    assert status.code == 3 and "not a valid OTLP protobuf" in status.message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be an object"),
        (b'{"resourceSpans": {"x": 1}}', "resourceSpans must be an array"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}', "startTimeUnixNano must be an integer"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"attributes": [{"value": {}}]}]}]}]}', "string key"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "\xff\xfe"}]}]}]}', "not valid JSON"),
    ],
)
def test_malformed_json_is_400_naming_the_problem(service, body, message):
    response = post(service, body, JSON)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    assert message in response.json()["message"]
    assert response.json()["code"] == 3


def test_wrong_content_type_is_415(service):
    response = post(service, b"hello", {"Content-Type": "text/plain"})
    assert response.status_code == 415
    assert "text/plain" in response.json()["message"]
    assert post(service, b"{}", {}).status_code == 415


def test_content_type_parameters_are_tolerated(service):
    response = post(service, b"{}", {"Content-Type": "application/json; charset=utf-8"})
    assert response.status_code == 200 and response.json() == {}


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_wrong_method_is_405_with_allow(service, method):
    response = requests.request(method, f"{service.url}/v1/traces", timeout=10)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert "use POST" in response.json()["message"]


def test_oversize_body_is_413(small_limit_service):
    response = post(small_limit_service, b"x" * (LIMIT + 1), PROTO)
    assert response.status_code == 413
    assert "limit" in status_of(response).message


def test_a_gzip_body_that_inflates_past_the_limit_is_413_and_stores_nothing(small_limit_service):
    bomb = gzip.compress(b"\0" * (LIMIT * 50))
    assert len(bomb) < LIMIT
    response = post(small_limit_service, bomb, {**PROTO, "Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert "inflates past the limit" in status_of(response).message
    assert stored(small_limit_service) == 0


def test_gzip_and_deflate_bodies_are_accepted(service):
    body = chat_request().SerializeToString()
    assert post(service, gzip.compress(body), {**PROTO, "Content-Encoding": "gzip"}).status_code == 200
    other = chat_request(span="1111111111111111").SerializeToString()
    assert post(service, zlib.compress(other), {**PROTO, "Content-Encoding": "deflate"}).status_code == 200
    raw_deflate = zlib.compressobj(wbits=-15)
    third = chat_request(span="2222222222222222").SerializeToString()
    assert post(service, raw_deflate.compress(third) + raw_deflate.flush(), {**PROTO, "Content-Encoding": "deflate"}).status_code == 200
    assert stored(service) == 3


def test_corrupt_gzip_is_400_and_unknown_encoding_415(service):
    assert post(service, b"\x1f\x8b not gzip", {**PROTO, "Content-Encoding": "gzip"}).status_code == 400
    truncated = gzip.compress(chat_request().SerializeToString())[:-10]
    response = post(service, truncated, {**PROTO, "Content-Encoding": "gzip"})
    assert response.status_code == 400 and "truncated" in status_of(response).message
    assert post(service, b"x", {**PROTO, "Content-Encoding": "br"}).status_code == 415


def test_empty_requests(service):
    empty = post(service, b"", PROTO)
    assert empty.status_code == 200
    assert ExportTraceServiceResponse.FromString(empty.content) == ExportTraceServiceResponse()
    assert post(service, b"{}", JSON).json() == {}
    assert post(service, b"", JSON).status_code == 400
    assert stored(service) == 0


def test_partial_success_reports_rejected_ai_spans_in_protobuf(service):
    request = chat_request()
    bad = chat_request(span="3333333333333333", end=1).resource_spans[0].scope_spans[0].spans[0]
    request.resource_spans[0].scope_spans[0].spans.append(bad)
    no_id = chat_request(span="").resource_spans[0].scope_spans[0].spans[0]
    request.resource_spans[0].scope_spans[0].spans.append(no_id)
    response = post(service, request.SerializeToString(), PROTO)
    assert response.status_code == 200
    reply = ExportTraceServiceResponse.FromString(response.content)
    assert reply.partial_success.rejected_spans == 2
    assert "end time is before start time" in reply.partial_success.error_message
    assert "span id must be 8 non-zero bytes" in reply.partial_success.error_message
    assert stored(service) == 1


def test_partial_success_in_json(service):
    body = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5B8EFFF798038103D269B633813FC60C",  # hex ids are case-insensitive
                                "spanId": "EEE19B7EC3C1B174",
                                "name": "chat",
                                "startTimeUnixNano": "1700000000000000000",
                                "endTimeUnixNano": 1700000000000001000,
                                "kind": 3,
                                "status": {"code": 2, "message": "boom"},
                                "attributes": [
                                    {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                                    {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "7"}},
                                    {"key": "tags", "value": {"arrayValue": {"values": [{"stringValue": "a"}]}}},
                                    {"key": "meta", "value": {"kvlistValue": {"values": [{"key": "k", "value": {"boolValue": True}}]}}},
                                ],
                                "unknownField": {"ignored": True},
                            },
                            {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "abcd", "startTimeUnixNano": "1700000000000000000",
                             "endTimeUnixNano": "1700000000000000001",
                             "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}]},
                        ]
                    }
                ]
            }
        ]
    }
    response = post(service, json.dumps(body).encode(), JSON)
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1" and "span id" in partial["errorMessage"]
    row = service.query("SELECT trace_id, span_id, input_tokens, succeeded, error_message, attributes FROM operations")[0]
    assert (row["trace_id"], row["span_id"]) == ("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174")
    assert (row["input_tokens"], row["succeeded"], row["error_message"]) == (7, False, "boom")
    assert row["attributes"] == {"tags": '["a"]', "meta": '{"k": true}'}


def test_snake_case_json_is_tolerated(service):
    body = {"resource_spans": [{"scope_spans": [{"spans": [{
        "trace_id": "5b8efff798038103d269b633813fc60c", "span_id": "eee19b7ec3c1b174",
        "start_time_unix_nano": 1700000000000000000, "end_time_unix_nano": 1700000000000005000,
        "attributes": [{"key": "gen_ai.operation.name", "value": {"string_value": "embeddings"}}],
    }]}]}]}
    assert post(service, json.dumps(body).encode(), JSON).status_code == 200
    assert service.query("SELECT capability, duration_ns FROM operations") == [{"capability": "Embedding", "duration_ns": 5000}]


def test_rows_of_one_export_are_written_in_one_insert(service):
    request = chat_request()
    spans = request.resource_spans[0].scope_spans[0].spans
    for i in range(1, 200):
        extra = chat_request(span=f"{i:016x}").resource_spans[0].scope_spans[0].spans[0]
        spans.append(extra)
    before = service.runtime.ingest.batcher.stats["commits"]
    assert post(service, request.SerializeToString(), PROTO).status_code == 200
    assert service.runtime.ingest.batcher.stats["commits"] == before + 1
    assert stored(service) == 200
