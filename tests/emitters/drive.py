"""Run one emitter scenario: real client + real instrumentation + real OTLP exporter(s), against the stub.

    python -m tests.emitters.drive EMITTER --stub http://127.0.0.1:PORT \\
        --export http/protobuf=http://127.0.0.1:4318 [--export grpc=127.0.0.1:4317 ...] --manifest out.json

Instrumentors patch the client libraries process-wide, so the tests run this in a subprocess, with the
emitter's environment (scenarios.EMITTERS[...].env) set before anything is imported. It sets a global
TracerProvider with one BatchSpanProcessor per ``--export`` (the SDK's OTLP exporter for that protocol) and
instruments; makes every call of the scenario (scenarios.OPENAI_CALLS / ANTHROPIC_CALLS); force-flushes;
and writes a manifest: for each call, the spans it produced (trace, span and parent ids, scope, name), so
the tests can find the rows of each call. Exits non-zero on anything unexpected: a call that should succeed raising, a failing
call not raising the expected error, a stream with the wrong text, or an export that did not succeed.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import traceback
from typing import Any, Sequence

from tests.emitters import scenarios
from tests.emitters.provider_stub import REPLY_TEXT

PROTOCOLS = ("http/protobuf", "http/json", "grpc")


class CheckedExporter:
    """Delegates to an OTLP exporter and remembers any export that did not succeed.

    BatchSpanProcessor only logs a failed export; the driver must fail instead.
    """

    def __init__(self, inner, label: str):
        self.inner = inner
        self.label = label
        self.exported = 0
        self.failures: list[str] = []
        self._lock = threading.Lock()

    def export(self, spans):
        from opentelemetry.sdk.trace.export import SpanExportResult

        result = self.inner.export(spans)
        with self._lock:
            if result == SpanExportResult.SUCCESS:
                self.exported += len(spans)
            else:
                self.failures.append(f"{self.label}: {result} for {len(spans)} span(s)")
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def make_exporter(protocol: str, endpoint: str):
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces", timeout=10)
    if protocol == "http/json":
        from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces", timeout=10)
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=10)
    raise SystemExit(f"unknown protocol {protocol!r}; one of {PROTOCOLS}")


def instrument(emitter: str, tracer_provider) -> None:
    if emitter in ("openai-v2", "openai-v2-latest"):
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)
    elif emitter == "openllmetry-openai":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)
    elif emitter == "openinference-openai":
        from openinference.instrumentation.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)
    elif emitter in ("openllmetry-anthropic", scenarios.DOUBLE_ANTHROPIC):
        from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor

        AnthropicInstrumentor().instrument(tracer_provider=tracer_provider)
    elif emitter == scenarios.DOUBLE_OPENAI:
        # The instrumentor applied last wraps outermost: openai-v2's span is the parent, OpenLLMetry's the leaf.
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor as OpenLLMetryInstrumentor
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor as OpenAIV2Instrumentor

        OpenLLMetryInstrumentor().instrument(tracer_provider=tracer_provider)
        OpenAIV2Instrumentor().instrument(tracer_provider=tracer_provider)
    elif emitter == "anthropic-native":
        pass  # the SDK traces by itself once a global tracer provider is set
    else:
        raise SystemExit(f"unknown emitter {emitter!r}")


def openai_call(client, call: scenarios.Call) -> Any:
    if call.capability == "Embedding":
        return client.embeddings.create(model=call.model, input=scenarios.EMBEDDING_INPUT)
    if not call.stream:
        return client.chat.completions.create(model=call.model, messages=scenarios.MESSAGES, temperature=0.5,
                                              max_tokens=50)
    extra = {"stream_options": {"include_usage": True}} if call.include_usage else {}
    chunks = client.chat.completions.create(model=call.model, messages=scenarios.MESSAGES, stream=True, **extra)
    return "".join((c.choices[0].delta.content or "") for c in chunks if c.choices)


def anthropic_call(client, call: scenarios.Call) -> Any:
    kwargs: dict[str, Any] = {"model": call.model, "max_tokens": 100, "messages": scenarios.MESSAGES}
    if call.system:
        kwargs["system"] = call.system
    if call.name == "stream_helper":
        with client.messages.stream(**kwargs) as stream:
            text = "".join(stream.text_stream)
            stream.get_final_message()
        return text
    if call.stream:
        return "".join(e.delta.text for e in client.messages.create(stream=True, **kwargs)
                       if e.type == "content_block_delta")
    return client.messages.create(**kwargs)


def run(emitter: str, stub_url: str, exports: Sequence[tuple[str, str]], service_name: str) -> dict:
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider_name = "anthropic" if "anthropic" in emitter else "openai"
    exporters = [CheckedExporter(make_exporter(protocol, endpoint), f"{protocol} {endpoint}")
                 for protocol, endpoint in exports]
    tracer_provider = TracerProvider(resource=Resource({"service.name": service_name}))
    for exporter in exporters:
        tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    # Only to tell which spans each call produced; the rows are what the tests check.
    seen = InMemorySpanExporter()
    tracer_provider.add_span_processor(SimpleSpanProcessor(seen))
    trace.set_tracer_provider(tracer_provider)  # the anthropic SDK's own telemetry uses the global provider
    instrument(emitter, tracer_provider)

    if provider_name == "openai":
        import openai

        client = openai.OpenAI(base_url=stub_url.rstrip("/") + "/v1", api_key="sk-test", max_retries=0)
        calls, do_call, errors = scenarios.OPENAI_CALLS, openai_call, openai
    else:
        import anthropic

        client = anthropic.Anthropic(base_url=stub_url, api_key="sk-ant-test", max_retries=0)
        calls, do_call, errors = scenarios.ANTHROPIC_CALLS, anthropic_call, anthropic

    problems: list[str] = []
    manifest: dict[str, Any] = {"emitter": emitter, "service_name": service_name, "calls": {}}
    for call in calls:
        seen.clear()
        try:
            value = do_call(client, call)
        except Exception as error:  # noqa: BLE001 - every outcome is checked below
            expected_class = getattr(errors, call.fails_with) if call.fails_with else None
            if expected_class is None or not isinstance(error, expected_class):
                problems.append(f"{call.name}: unexpected {type(error).__name__}: {error}\n"
                                + "".join(traceback.format_exception(error)))
        else:
            if call.fails_with:
                problems.append(f"{call.name}: expected {call.fails_with}, got {type(value).__name__}")
            elif call.stream and value != REPLY_TEXT:
                problems.append(f"{call.name}: streamed text {value!r} != {REPLY_TEXT!r}")
        manifest["calls"][call.name] = [
            {"trace_id": format(s.context.trace_id, "032x"), "span_id": format(s.context.span_id, "016x"),
             "parent_span_id": format(s.parent.span_id, "016x") if s.parent else "",
             "scope": s.instrumentation_scope.name if s.instrumentation_scope else "", "name": s.name}
            for s in sorted(seen.get_finished_spans(), key=lambda s: s.start_time)
        ]

    if not tracer_provider.force_flush(30_000):
        problems.append("force_flush timed out")
    tracer_provider.shutdown()
    for exporter in exporters:
        problems.extend(exporter.failures)
    manifest["exported"] = {e.label: e.exported for e in exporters}
    manifest["problems"] = problems
    return manifest


def parse_export(value: str) -> tuple[str, str]:
    protocol, sep, endpoint = value.partition("=")
    if not sep or protocol not in PROTOCOLS:
        raise argparse.ArgumentTypeError(f"expected PROTOCOL=ENDPOINT with PROTOCOL in {PROTOCOLS}")
    return protocol, endpoint


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("emitter", choices=sorted([*scenarios.EMITTERS, scenarios.DOUBLE_ANTHROPIC, scenarios.DOUBLE_OPENAI]))
    parser.add_argument("--stub", required=True, help="provider stub base URL, http://127.0.0.1:PORT")
    parser.add_argument("--export", action="append", type=parse_export, required=True,
                        help="PROTOCOL=ENDPOINT (http/protobuf and http/json: base URL; grpc: host:port)")
    parser.add_argument("--manifest", required=True, help="write the calls' span ids here (JSON)")
    parser.add_argument("--service-name", default=None)
    args = parser.parse_args(argv)
    manifest = run(args.emitter, args.stub, args.export, args.service_name or f"emitter-{args.emitter}")
    with open(args.manifest, "w") as out:
        json.dump(manifest, out, indent=2)
    for problem in manifest["problems"]:
        print(f"drive.py {args.emitter}: {problem}", file=sys.stderr)
    return 1 if manifest["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
