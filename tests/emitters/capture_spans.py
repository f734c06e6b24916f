"""Drive real GenAI instrumentation libraries against the local provider stub and print the spans they emit.

Each emitter runs in its own process (instrumentors patch the client libraries globally)::

    python capture_spans.py                       # every emitter, one subprocess each
    python capture_spans.py --emitter openai-v2   # one emitter (still in a subprocess with its env)
    python capture_spans.py --list                # emitters, with the env each needs
    python capture_spans.py --json-dir /tmp/caps  # also write <emitter>[-content][-parent][-realhost].json
    python capture_spans.py --content             # message-content capture on (per emitter's own switch)
    python capture_spans.py --app-parent          # each call inside an application span "app.request"
    python capture_spans.py --real-host           # clients use http://api.openai.com / http://api.anthropic.com,
                                                  # with the stub as HTTP proxy (host-derived attributes)
    python capture_spans.py --alias-httpx         # httpx2.alias_httpx() first: openai-v2 with openai>=3

For every emitter a ``TracerProvider`` with an ``InMemorySpanExporter`` (``SimpleSpanProcessor``) is set as the
global provider and passed to the instrumentor; a ``LoggerProvider`` with an in-memory log exporter catches
the GenAI log events that some instrumentations emit instead of span events. Then it makes, without any parent
span of its own (unless ``--app-parent``): a chat call, a streamed chat call (OpenAI: with and without
``stream_options.include_usage``; Anthropic: ``messages.create(stream=True)`` and the ``messages.stream`` helper),
an embeddings call (OpenAI only), and failing calls (model ``missing-model`` -> 404, ``fail-model`` -> 500).
Clients use ``max_retries=0``. For every call it prints every span: name, kind, scope name/version, trace and
parent (and which span of the same call the parent is), status, every attribute with its Python type, events,
the captured log records, and whether the HTTP request the stub saw carried a ``traceparent`` header.

By default content capture is OFF for every emitter (OpenLLMetry and OpenInference capture content out of the
box; their switches are set here to turn it off); ``--content`` turns it on. The environment each emitter needs
is in ``EMITTERS`` and is set in its process before anything is imported.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent

# name -> description, provider, env (set before imports), env when --content, instrumentation setup
EMITTERS: dict[str, dict[str, Any]] = {
    "openai-v2": {
        "doc": "opentelemetry-instrumentation-openai-v2, default (legacy) semconv mode",
        "provider": "openai",
        "env": {},
        "content_env": {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"},
    },
    "openai-v2-latest": {
        "doc": "opentelemetry-instrumentation-openai-v2 with OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental",
        "provider": "openai",
        "env": {"OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental"},
        "content_env": {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "SPAN_ONLY"},
    },
    "openllmetry-openai": {
        "doc": "OpenLLMetry opentelemetry-instrumentation-openai (content is captured by default)",
        "provider": "openai",
        "env": {"TRACELOOP_TRACE_CONTENT": "false"},
        "content_env": {"TRACELOOP_TRACE_CONTENT": "true"},
    },
    "openinference-openai": {
        "doc": "Arize openinference-instrumentation-openai (content is captured by default)",
        "provider": "openai",
        "env": {"OPENINFERENCE_HIDE_INPUTS": "true", "OPENINFERENCE_HIDE_OUTPUTS": "true"},
        "content_env": {"OPENINFERENCE_HIDE_INPUTS": "false", "OPENINFERENCE_HIDE_OUTPUTS": "false"},
    },
    "openinference-openai-genai": {
        "doc": "openinference-instrumentation-openai with OPENINFERENCE_ENABLE_GENAI_SEMCONV=true (adds gen_ai.*)",
        "provider": "openai",
        "env": {"OPENINFERENCE_ENABLE_GENAI_SEMCONV": "true",
                "OPENINFERENCE_HIDE_INPUTS": "true", "OPENINFERENCE_HIDE_OUTPUTS": "true"},
        "content_env": {"OPENINFERENCE_HIDE_INPUTS": "false", "OPENINFERENCE_HIDE_OUTPUTS": "false"},
    },
    "openllmetry-anthropic": {
        "doc": "OpenLLMetry opentelemetry-instrumentation-anthropic; the anthropic SDK's own spans switched off",
        "provider": "anthropic",
        "env": {"ANTHROPIC_OPEN_TELEMETRY": "false", "TRACELOOP_TRACE_CONTENT": "false"},
        "content_env": {"TRACELOOP_TRACE_CONTENT": "true"},
    },
    "anthropic-native": {
        "doc": "the anthropic SDK's own spans (on by default once a tracer provider is registered), no instrumentor",
        "provider": "anthropic",
        "env": {},
        "content_env": {"ANTHROPIC_OPEN_TELEMETRY_TRACES_CONTENT_MODE": "content"},
    },
    "double-anthropic": {
        "doc": "OpenLLMetry anthropic instrumentor AND the anthropic SDK's own spans, both on",
        "provider": "anthropic",
        "env": {"TRACELOOP_TRACE_CONTENT": "false"},
        "content_env": {"TRACELOOP_TRACE_CONTENT": "true",
                        "ANTHROPIC_OPEN_TELEMETRY_TRACES_CONTENT_MODE": "content"},
    },
}

OPENAI_CHAT_MODEL = "gpt-4o-mini"
OPENAI_EMBEDDING_MODEL = "text-embedding-3-small"
ANTHROPIC_MODEL = "claude-haiku-4-5"
PROMPT = "Say hello in five words"  # 5 words -> see provider_stub's token rule
SYSTEM_PROMPT = "You are terse."  # 3 words (Anthropic chat call only)
MAX_VALUE_CHARS = 160


# --------------------------------------------------------------------------- setup (runs in the emitter's process)


def _setup_otel():
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(tracer_provider)

    logger_provider = log_exporter = None
    try:
        from opentelemetry._logs import set_logger_provider
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

        try:
            from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter as _InMemoryLogs
        except ImportError:  # older SDK name
            from opentelemetry.sdk._logs.export import InMemoryLogExporter as _InMemoryLogs
        log_exporter = _InMemoryLogs()
        logger_provider = LoggerProvider()
        logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
        set_logger_provider(logger_provider)
    except Exception as err:  # logs are a side channel here; spans are what matters
        print(f"# (no in-memory log capture: {err!r})")
    return tracer_provider, exporter, logger_provider, log_exporter


def _instrument(emitter: str, tracer_provider, logger_provider) -> str:
    """Instruments for `emitter`; returns a note on what was done."""
    if emitter in ("openai-v2", "openai-v2-latest"):
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=tracer_provider, logger_provider=logger_provider)
        return "opentelemetry.instrumentation.openai_v2.OpenAIInstrumentor().instrument(tracer_provider, logger_provider)"
    if emitter == "openllmetry-openai":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)
        return "opentelemetry.instrumentation.openai.OpenAIInstrumentor().instrument(tracer_provider)"
    if emitter in ("openinference-openai", "openinference-openai-genai"):
        from openinference.instrumentation.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)
        return "openinference.instrumentation.openai.OpenAIInstrumentor().instrument(tracer_provider)"
    if emitter in ("openllmetry-anthropic", "double-anthropic"):
        from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor

        AnthropicInstrumentor().instrument(tracer_provider=tracer_provider)
        return "opentelemetry.instrumentation.anthropic.AnthropicInstrumentor().instrument(tracer_provider)"
    if emitter == "anthropic-native":
        return "no instrumentor: global TracerProvider only (anthropic SDK built-in tracing)"
    raise SystemExit(f"unknown emitter {emitter!r}")


# --------------------------------------------------------------------------- calls


def _openai_calls(stub, real_host: bool = False) -> list[tuple[str, Callable[[], Any]]]:
    import openai

    if real_host:  # http://api.openai.com/v1 through the stub as HTTP proxy
        if int(openai.__version__.split(".")[0]) >= 3:
            import httpx2 as http_lib
        else:
            import httpx as http_lib
        client = openai.OpenAI(base_url="http://api.openai.com/v1", api_key="sk-test", max_retries=0,
                               http_client=http_lib.Client(proxy=stub.base_url))
    else:
        client = openai.OpenAI(base_url=stub.openai_base_url, api_key="sk-test", max_retries=0)
    messages = [{"role": "user", "content": PROMPT}]

    def chat():
        return client.chat.completions.create(model=OPENAI_CHAT_MODEL, messages=messages, temperature=0.5,
                                              max_tokens=50)

    def stream(include_usage: bool):
        def run():
            kwargs: dict[str, Any] = {}
            if include_usage:
                kwargs["stream_options"] = {"include_usage": True}
            chunks = client.chat.completions.create(model=OPENAI_CHAT_MODEL, messages=messages, stream=True,
                                                    **kwargs)
            return "".join((c.choices[0].delta.content or "") for c in chunks if c.choices)
        return run

    def embeddings():
        return client.embeddings.create(model=OPENAI_EMBEDDING_MODEL, input="hello embedding world")

    def failing(model: str):
        return lambda: client.chat.completions.create(model=model, messages=messages)

    return [
        ("chat", chat),
        ("stream (include_usage)", stream(True)),
        ("stream (no include_usage)", stream(False)),
        ("embeddings", embeddings),
        ("failed chat 404 missing-model", failing("missing-model")),
        ("failed chat 500 fail-model", failing("fail-model")),
    ]


def _anthropic_calls(stub, real_host: bool = False) -> list[tuple[str, Callable[[], Any]]]:
    import anthropic

    if real_host:  # http://api.anthropic.com through the stub as HTTP proxy (anthropic 2.x uses httpx2)
        import httpx2

        client = anthropic.Anthropic(base_url="http://api.anthropic.com", api_key="sk-ant-test", max_retries=0,
                                     http_client=httpx2.Client(proxy=stub.base_url))
    else:
        client = anthropic.Anthropic(base_url=stub.base_url, api_key="sk-ant-test", max_retries=0)
    messages = [{"role": "user", "content": PROMPT}]

    def chat():
        # anthropic 2.x's messages.create takes no temperature/top_p/top_k; a system prompt and stop sequences instead
        return client.messages.create(model=ANTHROPIC_MODEL, max_tokens=100, messages=messages,
                                      system=SYSTEM_PROMPT, stop_sequences=["STOP"])

    def stream_create():
        events = client.messages.create(model=ANTHROPIC_MODEL, max_tokens=100, messages=messages, stream=True)
        return [e.type for e in events]

    def stream_helper():
        with client.messages.stream(model=ANTHROPIC_MODEL, max_tokens=100, messages=messages) as s:
            text = "".join(s.text_stream)
            s.get_final_message()
        return text

    def failing(model: str):
        return lambda: client.messages.create(model=model, max_tokens=10, messages=messages)

    return [
        ("chat", chat),
        ("stream (messages.create stream=True)", stream_create),
        ("stream (messages.stream helper)", stream_helper),
        ("failed chat 404 missing-model", failing("missing-model")),
        ("failed chat 500 fail-model", failing("fail-model")),
    ]


# --------------------------------------------------------------------------- printing


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        return value[:MAX_VALUE_CHARS] + f"...<{len(value)} chars>"
    return value


def _attrs(attributes: Any) -> dict[str, dict[str, Any]]:
    out = {}
    for key in sorted(attributes or {}):
        value = attributes[key]
        if isinstance(value, tuple):
            value_out: Any = [_short(v) for v in value]
        else:
            value_out = _short(value)
        out[key] = {"value": value_out, "type": type(value).__name__ + (
            f"[{type(value[0]).__name__}]" if isinstance(value, tuple) and value else "")}
    return out


def _span_record(span, names_by_id: dict[int, str]) -> dict[str, Any]:
    scope = span.instrumentation_scope
    parent = span.parent
    return {
        "name": span.name,
        "kind": span.kind.name,
        "scope": scope.name if scope else None,
        "scope_version": scope.version if scope else None,
        "trace_id": f"{span.context.trace_id:032x}",
        "span_id": f"{span.context.span_id:016x}",
        "parent_span_id": f"{parent.span_id:016x}" if parent else None,
        "parent_is_remote": bool(parent.is_remote) if parent else None,
        "parent_name_in_call": names_by_id.get(parent.span_id) if parent else None,
        "status": span.status.status_code.name,
        "status_description": span.status.description,
        "attributes": _attrs(span.attributes),
        "events": [{"name": e.name, "attributes": _attrs(e.attributes)} for e in span.events],
    }


def _log_record(data) -> dict[str, Any]:
    record = getattr(data, "log_record", data)
    body = getattr(record, "body", None)
    return {
        "event_name": getattr(record, "event_name", None),
        "attributes": _attrs(getattr(record, "attributes", None)),
        "body": _short(json.dumps(body, default=str)) if body is not None else None,
        "scope": getattr(getattr(data, "instrumentation_scope", None), "name", None),
        "has_span_context": bool(getattr(record, "span_id", 0)),
    }


def _print_call(call: dict[str, Any]) -> None:
    print(f"\n=== call: {call['call']}   result: {call['result']}")
    traces = {s["trace_id"] for s in call["spans"]}
    print(f"    {len(call['spans'])} span(s) in {len(traces)} trace(s)")
    for i, s in enumerate(call["spans"]):
        parent = "none (root)"
        if s["parent_span_id"]:
            parent = f"{s['parent_span_id']} = {s['parent_name_in_call']!r}" if s["parent_name_in_call"] else \
                f"{s['parent_span_id']} (not a span of this call; remote={s['parent_is_remote']})"
        print(f"  [{i}] name={s['name']!r} kind={s['kind']} scope={s['scope']!r} version={s['scope_version']!r}")
        print(f"      trace={s['trace_id']} span={s['span_id']} parent={parent}")
        print(f"      status={s['status']} description={s['status_description']!r}")
        print("      attributes:")
        for key, av in s["attributes"].items():
            print(f"        {key} = {av['value']!r} ({av['type']})")
        for e in s["events"]:
            print(f"      event {e['name']!r}: " + ", ".join(f"{k}={v['value']!r} ({v['type']})"
                                                      for k, v in e["attributes"].items()))
    for rec in call["logs"]:
        print(f"  log event={rec['event_name']!r} scope={rec['scope']!r} in_span={rec['has_span_context']} "
              f"attrs={ {k: v['value'] for k, v in rec['attributes'].items()} } body={rec['body']}")
    reqs = call.get("http_requests", [])
    if reqs:
        print("  http requests seen by stub: " + "; ".join(
            f"{r['method']} {r['path']} traceparent={'yes' if r['traceparent'] else 'no'}" for r in reqs))


# --------------------------------------------------------------------------- run one emitter


def run_emitter(emitter: str, content: bool, app_parent: bool = False, alias_httpx: bool = False,
                real_host: bool = False) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    if alias_httpx:
        # openai>=3 uses the `httpx2` fork; opentelemetry-instrumentation-openai-v2 (2.3b0, 2.4b0) imports `httpx`.
        # httpx2.alias_httpx() makes `import httpx` give httpx2 (process-wide; must run before any httpx import).
        import httpx2

        httpx2.alias_httpx()
    from provider_stub import ProviderStub

    spec = EMITTERS[emitter]
    tracer_provider, exporter, logger_provider, log_exporter = _setup_otel()
    note = _instrument(emitter, tracer_provider, logger_provider)

    import importlib.metadata as md

    versions = {}
    for dist in ("opentelemetry-sdk", "openai", "anthropic", "opentelemetry-instrumentation-openai-v2",
                 "opentelemetry-util-genai", "opentelemetry-instrumentation-openai",
                 "opentelemetry-instrumentation-anthropic", "openinference-instrumentation-openai",
                 "openinference-instrumentation"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    env_used = {k: os.environ[k] for k in sorted(os.environ) if k.startswith(
        ("OTEL_", "TRACELOOP_", "OPENINFERENCE_", "ANTHROPIC_OPEN_TELEMETRY"))}
    result: dict[str, Any] = {"emitter": emitter, "doc": spec["doc"], "setup": note, "env": env_used,
                              "content": content, "app_parent": app_parent, "real_host": real_host,
                              "versions": versions, "calls": []}
    print(f"##### emitter: {emitter} -- {spec['doc']}")
    print(f"# setup: {note}")
    print(f"# env: {env_used}  content={content} app_parent={app_parent} real_host={real_host}")
    print(f"# versions: {versions}")

    with ProviderStub() as stub:
        calls = (_openai_calls if spec["provider"] == "openai" else _anthropic_calls)(stub, real_host)
        for call_name, fn in calls:
            exporter.clear()
            if log_exporter is not None:
                log_exporter.clear()
            seen = len(stub.requests)
            try:
                if app_parent:
                    with tracer_provider.get_tracer("capture_spans.app").start_as_current_span("app.request"):
                        value = fn()
                else:
                    value = fn()
                outcome = f"ok: {type(value).__name__}"
            except Exception as err:
                outcome = f"raised {type(err).__name__}: {str(err)[:120]}"
            tracer_provider.force_flush()
            spans = sorted(exporter.get_finished_spans(), key=lambda s: s.start_time)
            names = {s.context.span_id: s.name for s in spans}
            logs = [_log_record(r) for r in (log_exporter.get_finished_logs() if log_exporter else [])]
            http = [{"method": r["method"], "path": r["path"], "traceparent": r["headers"].get("traceparent")}
                    for r in stub.requests[seen:]]
            call = {"call": call_name, "result": outcome, "spans": [_span_record(s, names) for s in spans],
                    "logs": logs, "http_requests": http}
            result["calls"].append(call)
            _print_call(call)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--emitter", choices=sorted(EMITTERS), help="run one emitter in this process")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--content", action="store_true", help="switch message-content capture on")
    parser.add_argument("--json-dir", help="write <emitter>.json here")
    parser.add_argument("--alias-httpx", action="store_true",
                        help="call httpx2.alias_httpx() first (needed by openai-v2 with openai>=3)")
    parser.add_argument("--real-host", action="store_true",
                        help="clients use http://api.openai.com / http://api.anthropic.com with the stub as proxy")
    parser.add_argument("--app-parent", action="store_true",
                        help="make each call inside an application span 'app.request' (to see nesting)")
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.list:
        for name, spec in EMITTERS.items():
            print(f"{name:24} {spec['doc']}  env={spec['env']} content_env={spec['content_env']}")
        return 0

    if args.emitter and args.in_process:
        try:
            result = run_emitter(args.emitter, args.content, args.app_parent, args.alias_httpx, args.real_host)
        except Exception:
            traceback.print_exc()
            return 1
        if args.json_dir:
            Path(args.json_dir).mkdir(parents=True, exist_ok=True)
            suffix = (("-content" if args.content else "") + ("-parent" if args.app_parent else "")
                      + ("-realhost" if args.real_host else ""))
            (Path(args.json_dir) / f"{args.emitter}{suffix}.json").write_text(json.dumps(result, indent=2))
        return 0

    # Each emitter in a fresh process, with its environment set before anything is imported.
    failures = 0
    for name in ([args.emitter] if args.emitter else list(EMITTERS)):
        spec = EMITTERS[name]
        env = dict(os.environ)
        env.update(spec["env"])
        if args.content:
            env.update(spec["content_env"])
        cmd = [sys.executable, str(Path(__file__).resolve()), "--emitter", name, "--in-process"]
        if args.content:
            cmd.append("--content")
        if args.app_parent:
            cmd.append("--app-parent")
        if args.alias_httpx:
            cmd.append("--alias-httpx")
        if args.real_host:
            cmd.append("--real-host")
        if args.json_dir:
            cmd += ["--json-dir", args.json_dir]
        sys.stdout.flush()
        rc = subprocess.call(cmd, env=env)
        if rc:
            print(f"!!! emitter {name} failed with exit code {rc}")
            failures += 1
        print()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
