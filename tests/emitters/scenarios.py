"""The calls every emitter scenario makes, shared by the driver (drive.py) and the tests.

Expected numbers come from provider_stub's documented token rule (``expected_*_usage``), never from the
service: the tests compute them from the same request the driver sends.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.emitters.provider_stub import (
    ANTHROPIC_CACHE_CREATION_TOKENS,
    ANTHROPIC_CACHE_READ_TOKENS,
    FAIL_MODEL,
    MISSING_MODEL,
    OPENAI_CACHED_TOKENS,
    OPENAI_REASONING_TOKENS,
    RESPONSE_MODEL_SUFFIX,
    expected_anthropic_usage,
    expected_embeddings_usage,
    expected_openai_chat_usage,
)

OPENAI_CHAT_MODEL = "gpt-4o-mini"
OPENAI_EMBEDDING_MODEL = "text-embedding-3-small"
ANTHROPIC_MODEL = "claude-haiku-4-5"

PROMPT = "Say hello in five words"
SYSTEM_PROMPT = "You are terse."  # Anthropic's non-streamed call only, so its input differs from the streams'
EMBEDDING_INPUT = ["hello embedding world", "and a second input"]
MESSAGES = [{"role": "user", "content": PROMPT}]

# Anthropic's stream opens with message_start carrying output_tokens=1; message_delta then has the cumulative 7.
ANTHROPIC_MESSAGE_START_OUTPUT_TOKENS = 1


@dataclass(frozen=True)
class Call:
    """One client call of a scenario, and what the stub answers to it."""

    name: str
    capability: str  # "Chat" | "Embedding"
    model: str  # requested model
    stream: bool = False
    include_usage: bool = True  # OpenAI streams: stream_options.include_usage
    system: str | None = None  # Anthropic system prompt
    fails_with: str | None = None  # client exception class name the call must raise

    @property
    def failed(self) -> bool:
        return self.fails_with is not None


OPENAI_CALLS = (
    Call("chat", "Chat", OPENAI_CHAT_MODEL),
    Call("stream", "Chat", OPENAI_CHAT_MODEL, stream=True),
    Call("stream_no_usage", "Chat", OPENAI_CHAT_MODEL, stream=True, include_usage=False),
    Call("embeddings", "Embedding", OPENAI_EMBEDDING_MODEL),
    Call("missing_model", "Chat", MISSING_MODEL, fails_with="NotFoundError"),
    Call("fail_model", "Chat", FAIL_MODEL, fails_with="InternalServerError"),
)

ANTHROPIC_CALLS = (
    Call("chat", "Chat", ANTHROPIC_MODEL, system=SYSTEM_PROMPT),
    Call("stream", "Chat", ANTHROPIC_MODEL, stream=True),  # messages.create(stream=True)
    Call("stream_helper", "Chat", ANTHROPIC_MODEL, stream=True),  # the messages.stream(...) helper
    Call("missing_model", "Chat", MISSING_MODEL, fails_with="NotFoundError"),
    Call("fail_model", "Chat", FAIL_MODEL, fails_with="InternalServerError"),
)


@dataclass(frozen=True)
class Emitter:
    """One instrumentation, the environment it needs, and what it is known to report.

    The ``reports_*`` flags describe the emitter (verified with capture_spans.py), not the service: where an
    emitter does not send a value at all, the stored value is the column's empty default.
    """

    name: str
    provider: str  # "openai" | "anthropic"
    env: dict
    scopes: tuple[str, ...]  # instrumentation scopes its model-call spans come from
    error_types: dict  # call name -> the error type the emitter records
    reports_cache_read: bool = False
    reports_cache_write: bool = False
    reports_reasoning: tuple[str, ...] = ()  # calls whose reasoning tokens the emitter records
    reports_streaming: tuple[str, ...] = ()  # calls the emitter marks as streamed
    reports_embedding_response_model: bool = True
    stream_output_off_by_one: bool = False

    @property
    def calls(self) -> tuple[Call, ...]:
        return OPENAI_CALLS if self.provider == "openai" else ANTHROPIC_CALLS


OPENAI_CLASS_ERRORS = {"missing_model": "NotFoundError", "fail_model": "InternalServerError"}

EMITTERS: dict[str, Emitter] = {
    e.name: e
    for e in (
        # Legacy mode: gen_ai.system; no cache, reasoning or streaming attributes at all.
        Emitter("openai-v2", "openai", {}, ("opentelemetry.instrumentation.openai_v2",), OPENAI_CLASS_ERRORS),
        # Latest-experimental mode: gen_ai.provider.name; chat spans come from the util-genai handler.
        Emitter(
            "openai-v2-latest",
            "openai",
            {"OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental"},
            ("opentelemetry.util.genai.handler", "opentelemetry.instrumentation.openai_v2"),
            OPENAI_CLASS_ERRORS,
        ),
        Emitter(
            "openllmetry-openai",
            "openai",
            {"TRACELOOP_TRACE_CONTENT": "false"},
            ("opentelemetry.instrumentation.openai.v1",),
            OPENAI_CLASS_ERRORS,
            reports_cache_read=True,
            reports_reasoning=("chat",),  # not on streams
            reports_streaming=("stream", "stream_no_usage"),
        ),
        # Requested model only in llm.invocation_parameters; no error.type (the exception event's type is used).
        Emitter(
            "openinference-openai",
            "openai",
            {"OPENINFERENCE_HIDE_INPUTS": "true", "OPENINFERENCE_HIDE_OUTPUTS": "true"},
            ("openinference.instrumentation.openai",),
            {"missing_model": "openai.NotFoundError", "fail_model": "openai.InternalServerError"},
            reports_cache_read=True,
            reports_reasoning=("chat", "stream"),
            # It records "stream": true only inside llm.invocation_parameters (see the xfail in the tests).
            reports_streaming=("stream", "stream_no_usage"),
            reports_embedding_response_model=False,
        ),
        Emitter(
            "openllmetry-anthropic",
            "anthropic",
            # The anthropic SDK's own spans off, so only OpenLLMetry's are seen.
            {"TRACELOOP_TRACE_CONTENT": "false", "ANTHROPIC_OPEN_TELEMETRY": "false"},
            ("opentelemetry.instrumentation.anthropic",),
            OPENAI_CLASS_ERRORS,  # the anthropic client's exception class names are the same
            reports_cache_read=True,
            reports_cache_write=True,
            reports_streaming=("stream",),  # the messages.stream helper is not marked
            stream_output_off_by_one=True,
        ),
        # The anthropic SDK's built-in telemetry: on whenever a global tracer provider is set.
        Emitter(
            "anthropic-native",
            "anthropic",
            {},
            ("com.anthropic.sdk.python",),
            {"missing_model": "not_found_error", "fail_model": "api_error"},  # the API's error types
            reports_cache_read=True,
            reports_cache_write=True,
            reports_streaming=("stream", "stream_helper"),
        ),
    )
}

# Both of the Anthropic instrumentations at once (the README's "Two instrumentations of one client").
DOUBLE_ANTHROPIC = "double-anthropic"
DOUBLE_ANTHROPIC_ENV = {"TRACELOOP_TRACE_CONTENT": "false"}
# OpenLLMetry's and the official OpenAI instrumentation at once: their spans nest (one trace), unlike Anthropic's.
DOUBLE_OPENAI = "double-openai"
DOUBLE_OPENAI_ENV = {"TRACELOOP_TRACE_CONTENT": "false"}


@dataclass(frozen=True)
class Expected:
    """The stored operation a call should become, from the stub's token rule and the emitter's profile."""

    capability: str
    provider: str
    request_model: str
    response_model: str
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    streaming: bool
    succeeded: bool
    error_type: str


def expected(emitter: Emitter, call: Call) -> Expected:
    provider = emitter.provider
    tokens = dict(input=0, output=0, total=0, cache_read=0, cache_write=0, reasoning=0)
    response_model = ""
    if not call.failed:
        response_model = call.model + (RESPONSE_MODEL_SUFFIX[provider] if call.capability == "Chat" else "")
        if call.capability == "Embedding":
            usage = expected_embeddings_usage(EMBEDDING_INPUT)
            tokens.update(input=usage["prompt_tokens"], total=usage["total_tokens"])
            if not emitter.reports_embedding_response_model:
                response_model = ""
        elif provider == "openai":
            if call.include_usage:  # without include_usage the API sends no usage: no emitter has tokens
                usage = expected_openai_chat_usage(MESSAGES)
                tokens.update(input=usage["prompt_tokens"], output=usage["completion_tokens"],
                              total=usage["total_tokens"])
                if emitter.reports_cache_read:
                    tokens["cache_read"] = OPENAI_CACHED_TOKENS
                if call.name in emitter.reports_reasoning:
                    tokens["reasoning"] = OPENAI_REASONING_TOKENS
        else:
            usage = expected_anthropic_usage(MESSAGES, call.system)
            # Anthropic's input_tokens excludes the cache; both Anthropic emitters add it in (the conventions' rule).
            all_input = (usage["input_tokens"] + usage["cache_creation_input_tokens"]
                         + usage["cache_read_input_tokens"])
            output = usage["output_tokens"]
            if call.stream and emitter.stream_output_off_by_one:
                # OpenLLMetry 0.62.4 adds message_start's output_tokens to message_delta's cumulative count.
                output += ANTHROPIC_MESSAGE_START_OUTPUT_TOKENS
            tokens.update(input=all_input, output=output, total=all_input + output)
            if emitter.reports_cache_read:
                tokens["cache_read"] = ANTHROPIC_CACHE_READ_TOKENS
            if emitter.reports_cache_write:
                tokens["cache_write"] = ANTHROPIC_CACHE_CREATION_TOKENS
    return Expected(
        capability=call.capability,
        provider=provider,
        request_model=call.model,
        response_model=response_model,
        input_tokens=tokens["input"],
        output_tokens=tokens["output"],
        total_tokens=tokens["total"],
        cache_read_tokens=tokens["cache_read"],
        cache_write_tokens=tokens["cache_write"],
        reasoning_tokens=tokens["reasoning"],
        streaming=call.name in emitter.reports_streaming,
        succeeded=not call.failed,
        error_type=emitter.error_types.get(call.name, "") if call.failed else "",
    )


def expected_totals(emitters: list[Emitter]) -> dict:
    """Requests, token sums and outcomes when each of these emitters' calls is counted once."""
    wanted = [expected(e, call) for e in emitters for call in e.calls]
    return {
        "requests": len(wanted),
        "input_tokens": sum(w.input_tokens for w in wanted),
        "output_tokens": sum(w.output_tokens for w in wanted),
        "total_tokens": sum(w.total_tokens for w in wanted),
        "cache_read_tokens": sum(w.cache_read_tokens for w in wanted),
        "cache_write_tokens": sum(w.cache_write_tokens for w in wanted),
        "successes": sum(w.succeeded for w in wanted),
        "failures": sum(not w.succeeded for w in wanted),
    }
