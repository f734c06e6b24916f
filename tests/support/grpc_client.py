"""The SDK's OTLP/gRPC exporter and a raw TraceService stub, for tests."""

from __future__ import annotations

import grpc
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc


def grpc_exporter(port: int, gzip: bool = False, headers: dict | None = None) -> OTLPSpanExporter:
    return OTLPSpanExporter(
        endpoint=f"127.0.0.1:{port}",
        insecure=True,
        compression=grpc.Compression.Gzip if gzip else grpc.Compression.NoCompression,
        headers=headers,
        timeout=10,
    )


def trace_stub(port: int) -> tuple[grpc.Channel, trace_service_pb2_grpc.TraceServiceStub]:
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    return channel, trace_service_pb2_grpc.TraceServiceStub(channel)
