"""Real OpenTelemetry SDK pieces for tests: exporters over HTTP (protobuf, JSON) and spans with chosen values."""

from __future__ import annotations

from opentelemetry.exporter.otlp.common.http import Compression as JsonCompression
from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter as JsonSpanExporter
from opentelemetry.exporter.otlp.proto.http import Compression as ProtoCompression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as ProtoSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

ENCODINGS = ("protobuf", "json")


def http_exporter(url: str, encoding: str, gzip: bool = False, headers: dict | None = None):
    """The SDK's own OTLP/HTTP exporter for `encoding`, pointed at `url` (…/v1/traces)."""
    if encoding == "protobuf":
        compression = ProtoCompression.Gzip if gzip else ProtoCompression.NoCompression
        return ProtoSpanExporter(endpoint=url, compression=compression, headers=headers, timeout=10)
    compression = JsonCompression.GZIP if gzip else JsonCompression.NONE
    return JsonSpanExporter(endpoint=url, compression=compression, headers=headers, timeout=10)


class Recorder:
    """A tracer provider whose finished spans are kept, to be exported when the test says."""

    def __init__(self, resource: dict | None = None):
        self.memory = InMemorySpanExporter()
        self.provider = TracerProvider(resource=Resource(resource or {"service.name": "tests"}))
        self.provider.add_span_processor(SimpleSpanProcessor(self.memory))

    def tracer(self, scope: str = "tests", version: str = "1.0"):
        return self.provider.get_tracer(scope, version)

    def take(self) -> list[ReadableSpan]:
        spans = list(self.memory.get_finished_spans())
        self.memory.clear()
        return spans


def export(exporter, spans: list[ReadableSpan]) -> None:
    result = exporter.export(spans)
    assert result == SpanExportResult.SUCCESS, f"export failed: {result}"


def ids(span: ReadableSpan) -> tuple[str, str]:
    context = span.get_span_context()
    return format(context.trace_id, "032x"), format(context.span_id, "016x")
