"""OTLP/gRPC: the SDK's gRPC exporter, gzip, partial success, limits and status codes."""

from __future__ import annotations

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.e2e.test_otlp_protocol import chat_request
from tests.support.grpc_client import grpc_exporter, trace_stub
from tests.support.otel import Recorder, export
from tests.support.service import free_port

START = 1_735_689_600_000_000_000


@pytest.fixture
def grpc_service(make_service):
    return make_service(grpc_port=free_port(), max_body_bytes=256 * 1024)


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
def test_sdk_grpc_exporter(grpc_service, gzip):
    recorder = Recorder({"service.name": "grpc-app"})
    tracer = recorder.tracer("opentelemetry.instrumentation.openai_v2")
    for i in range(3):
        tracer.start_span(
            "chat gpt-4o-mini",
            start_time=START + i,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.system": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.usage.input_tokens": 10 + i,
                "gen_ai.usage.output_tokens": 2,
            },
        ).end(end_time=START + i + 1_000_000)
    export(grpc_exporter(grpc_service.runtime.grpc_port, gzip=gzip), recorder.take())
    rows = grpc_service.query(
        "SELECT provider, request_model, input_tokens, total_tokens, service_name, scope_name FROM operations ORDER BY timestamp"
    )
    assert rows == [
        {"provider": "openai", "request_model": "gpt-4o-mini", "input_tokens": 10 + i, "total_tokens": 12 + i,
         "service_name": "grpc-app", "scope_name": "opentelemetry.instrumentation.openai_v2"}
        for i in range(3)
    ]


def test_partial_success_over_grpc(grpc_service):
    request = chat_request()
    bad = chat_request(span="4444444444444444", end=1).resource_spans[0].scope_spans[0].spans[0]
    request.resource_spans[0].scope_spans[0].spans.append(bad)
    channel, stub = trace_stub(grpc_service.runtime.grpc_port)
    with channel:
        response = stub.Export(request, timeout=10)
    assert response.partial_success.rejected_spans == 1
    assert "end time is before start time" in response.partial_success.error_message


def test_oversize_message_is_refused_by_grpc(grpc_service):
    request = ExportTraceServiceRequest()
    request.resource_spans.add().resource.attributes.add(key="blob").value.string_value = "x" * (300 * 1024)
    channel, stub = trace_stub(grpc_service.runtime.grpc_port)
    with channel, pytest.raises(grpc.RpcError) as raised:
        stub.Export(request, timeout=10)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_a_gzip_bomb_over_grpc_is_refused(grpc_service):
    request = ExportTraceServiceRequest()
    request.resource_spans.add().resource.attributes.add(key="zeros").value.string_value = "\0" * (4 * 1024 * 1024)
    channel = grpc.insecure_channel(f"127.0.0.1:{grpc_service.runtime.grpc_port}", compression=grpc.Compression.Gzip)
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

    with channel, pytest.raises(grpc.RpcError) as raised:
        trace_service_pb2_grpc.TraceServiceStub(channel).Export(request, timeout=10)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert grpc_service.query("SELECT count() AS n FROM operations") == [{"n": 0}]
