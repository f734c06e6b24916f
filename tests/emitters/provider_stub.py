"""A local HTTP stub of the OpenAI and Anthropic APIs, for driving real instrumentation libraries.

Standard library only: ``http.server.ThreadingHTTPServer`` on 127.0.0.1, port 0 (a free port).

Usage::

    with ProviderStub() as stub:
        client = openai.OpenAI(base_url=stub.openai_base_url, api_key="test", max_retries=0)
        client2 = anthropic.Anthropic(base_url=stub.base_url, api_key="test", max_retries=0)

    # pytest
    @pytest.fixture
    def provider_stub():
        with ProviderStub() as stub:
            yield stub

``stub.base_url`` is ``http://127.0.0.1:PORT`` (what the Anthropic client takes: it appends ``/v1/messages``);
``stub.openai_base_url`` is ``base_url + "/v1"`` (what the OpenAI client takes). ``stub.requests`` lists every
request received (method, path, lower-cased headers, decoded JSON body), e.g. to check ``traceparent``.

Endpoints
---------
OpenAI:    ``POST /v1/chat/completions`` (JSON, or SSE when ``"stream": true``; a final usage chunk with
           ``"choices": []`` is sent only when ``stream_options.include_usage`` is true), ``POST /v1/embeddings``.
Anthropic: ``POST /v1/messages`` (JSON, or SSE when ``"stream": true``: message_start, content_block_start,
           content_block_delta per word, content_block_stop, message_delta, message_stop).
Anything else: 404 in the shape of the API the path belongs to.

Real host names
---------------
Some emitters derive attributes from the client's host (OpenInference sets ``llm.provider`` only for known hosts
such as ``api.openai.com``; ``server.address`` is the host). To get them, point the client at the real host over
plain http and use the stub as the HTTP proxy; the stub accepts absolute-form request targets::

    openai.OpenAI(base_url="http://api.openai.com/v1", api_key="k", max_retries=0,
                  http_client=httpx.Client(proxy=stub.base_url))           # openai<3; httpx2.Client for openai>=3
    anthropic.Anthropic(base_url="http://api.anthropic.com", api_key="k", max_retries=0,
                        http_client=httpx2.Client(proxy=stub.base_url))     # anthropic 2.x uses httpx2

Make sure no ``NO_PROXY``/``no_proxy`` entry matches those hosts.

Failures (by the requested ``model``)
-------------------------------------
``missing-model`` -> 404. OpenAI: ``{"error": {"message", "type": "invalid_request_error", "param": null,
                   "code": "model_not_found"}}``. Anthropic: ``{"type": "error", "error": {"type": "not_found_error",
                   "message"}, "request_id"}``.
``fail-model``    -> 500. OpenAI: ``{"error": {"message", "type": "server_error", "param": null, "code": null}}``.
                   Anthropic: ``{"type": "error", "error": {"type": "api_error", "message"}, "request_id"}``.
Configure the clients with ``max_retries=0`` or the SDKs retry 5xx (and the stub counts every attempt).

Token rule (deterministic; ``W`` = word count)
----------------------------------------------
``W`` = number of whitespace-separated words in all text of the request: every message's ``content`` (a string,
or the ``text`` of each ``{"type": "text"}`` part of a list) plus, for Anthropic, ``system`` (string or text parts).
For embeddings ``W`` = words of ``input`` (a string or a list of strings; token-id lists count one per id).

OpenAI chat (non-streamed, and the streamed usage chunk alike)::

    prompt_tokens     = W + 10          prompt_tokens_details.cached_tokens        = 4  (part of prompt_tokens)
    completion_tokens = 7               completion_tokens_details.reasoning_tokens = 2  (part of completion_tokens)
    total_tokens      = prompt_tokens + completion_tokens

OpenAI embeddings: ``prompt_tokens = total_tokens = W``; vectors of ``dimensions`` (default 8) floats,
base64-packed float32 when ``encoding_format == "base64"`` (the openai client's default), else a JSON list.

Anthropic messages (Anthropic's ``input_tokens`` EXCLUDES cache tokens, as in the real API)::

    input_tokens = W + 10      cache_creation_input_tokens = 3      cache_read_input_tokens = 5
    output_tokens = 7          (so all input = W + 18)
    Streamed: message_start.message.usage has the input/cache numbers and ``output_tokens: 1`` (as the real API);
    message_delta.usage has the cumulative totals: input_tokens, both cache fields and ``output_tokens: 7``.

Reply text: ``"Hello from the stub"`` (4 words; streamed one word per chunk/delta). ``finish_reason``/``stop_reason``:
``"stop"`` / ``"end_turn"``. Response model = requested model + ``RESPONSE_MODEL_SUFFIX`` (``-2024-08-06`` for
OpenAI, ``-20250101`` for Anthropic), so request and response model differ. IDs: ``chatcmpl-stub-N``,
``msg_stub_N``, request ids ``req_stub_N`` (headers ``x-request-id`` / ``request-id``), N counting from 1 per stub.
``expected_openai_chat_usage``/``expected_anthropic_usage``/``expected_embeddings_usage`` compute the numbers.
"""

from __future__ import annotations

import base64
import itertools
import json
import struct
import sys
import threading
import time
from urllib.parse import urlsplit
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterable

REPLY_TEXT = "Hello from the stub"
OPENAI_CACHED_TOKENS = 4
OPENAI_COMPLETION_TOKENS = 7
OPENAI_REASONING_TOKENS = 2
ANTHROPIC_CACHE_CREATION_TOKENS = 3
ANTHROPIC_CACHE_READ_TOKENS = 5
ANTHROPIC_OUTPUT_TOKENS = 7
INPUT_TOKEN_BASE = 10
EMBEDDING_DEFAULT_DIMENSIONS = 8
RESPONSE_MODEL_SUFFIX = {"openai": "-2024-08-06", "anthropic": "-20250101"}
MISSING_MODEL = "missing-model"
FAIL_MODEL = "fail-model"
CREATED = 1_700_000_000  # fixed "created" timestamp of OpenAI responses

__all__ = [
    "ProviderStub",
    "REPLY_TEXT",
    "MISSING_MODEL",
    "FAIL_MODEL",
    "count_words",
    "expected_openai_chat_usage",
    "expected_embeddings_usage",
    "expected_anthropic_usage",
]


# --------------------------------------------------------------------------- token rule


def _words(text: Any) -> int:
    return len(text.split()) if isinstance(text, str) else 0


def _content_words(content: Any) -> int:
    if isinstance(content, str):
        return _words(content)
    if isinstance(content, list):
        return sum(_words(p.get("text")) for p in content if isinstance(p, dict) and p.get("type") in ("text", "input_text"))
    return 0


def count_words(messages: Iterable[dict] | None, system: Any = None) -> int:
    """``W`` of the token rule for a chat/messages request."""
    total = _content_words(system)
    for message in messages or ():
        if isinstance(message, dict):
            total += _content_words(message.get("content"))
    return total


def expected_openai_chat_usage(messages: Iterable[dict]) -> dict:
    prompt = count_words(messages) + INPUT_TOKEN_BASE
    return {
        "prompt_tokens": prompt,
        "completion_tokens": OPENAI_COMPLETION_TOKENS,
        "total_tokens": prompt + OPENAI_COMPLETION_TOKENS,
        "prompt_tokens_details": {"cached_tokens": OPENAI_CACHED_TOKENS, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": OPENAI_REASONING_TOKENS,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _embedding_inputs(value: Any) -> list:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return [value]  # one token-id list
    return list(value) if isinstance(value, list) else []


def expected_embeddings_usage(input_value: Any) -> dict:
    words = 0
    for item in _embedding_inputs(input_value):
        words += len(item) if isinstance(item, list) else _words(item)
    return {"prompt_tokens": words, "total_tokens": words}


def expected_anthropic_usage(messages: Iterable[dict], system: Any = None) -> dict:
    return {
        "input_tokens": count_words(messages, system) + INPUT_TOKEN_BASE,
        "cache_creation_input_tokens": ANTHROPIC_CACHE_CREATION_TOKENS,
        "cache_read_input_tokens": ANTHROPIC_CACHE_READ_TOKENS,
        "output_tokens": ANTHROPIC_OUTPUT_TOKENS,
    }


# --------------------------------------------------------------------------- server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format: str, *args: Any) -> None:  # silence the default stderr log
        pass

    # ---- plumbing

    def _read_json(self) -> Any:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            return None

    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _start_sse(self, headers: dict[str, str]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()

    def _chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # ---- dispatch

    def do_GET(self) -> None:
        self._dispatch(None)

    def do_POST(self) -> None:
        self._dispatch(self._read_json())

    def _dispatch(self, body: Any) -> None:
        # Absolute-form request target: the stub is being used as an HTTP proxy (see "Real host names").
        target = urlsplit(self.path)._replace(scheme="", netloc="").geturl() if "://" in self.path else self.path
        path = target.split("?", 1)[0].rstrip("/")
        n = self.server.stub._record(self.command, self.path, dict((k.lower(), v) for k, v in self.headers.items()), body)
        request_id = f"req_stub_{n}"
        anthropic_path = path.startswith("/v1/messages") or path.startswith("/v1/complete")
        if body is None and self.command == "POST":
            if anthropic_path:
                return self._anthropic_error(400, "invalid_request_error", "invalid JSON body", request_id)
            return self._openai_error(400, "invalid JSON body", "invalid_request_error", None, request_id)
        if self.command == "POST" and path == "/v1/chat/completions":
            return self._openai_chat(body, n, request_id)
        if self.command == "POST" and path == "/v1/embeddings":
            return self._openai_embeddings(body, request_id)
        if self.command == "POST" and path == "/v1/messages":
            return self._anthropic_messages(body, n, request_id)
        if anthropic_path:
            return self._anthropic_error(404, "not_found_error", f"Not found: {self.path}", request_id)
        return self._openai_error(404, f"Unknown request URL: {self.command} {self.path}.", "invalid_request_error",
                                  "unknown_url", request_id)

    # ---- OpenAI

    def _openai_error(self, status: int, message: str, type_: str, code: str | None, request_id: str) -> None:
        self._send_json(status, {"error": {"message": message, "type": type_, "param": None, "code": code}},
                        {"x-request-id": request_id})

    def _openai_failure(self, model: Any, request_id: str) -> bool:
        if model == MISSING_MODEL:
            self._openai_error(404, f"The model `{model}` does not exist or you do not have access to it.",
                               "invalid_request_error", "model_not_found", request_id)
            return True
        if model == FAIL_MODEL:
            self._openai_error(500, "The server had an error while processing your request. Sorry about that!",
                               "server_error", None, request_id)
            return True
        return False

    def _openai_chat(self, body: dict, n: int, request_id: str) -> None:
        model = body.get("model")
        if self._openai_failure(model, request_id):
            return
        response_model = f"{model}{RESPONSE_MODEL_SUFFIX['openai']}"
        usage = expected_openai_chat_usage(body.get("messages") or [])
        completion_id = f"chatcmpl-stub-{n}"
        headers = {"x-request-id": request_id, "openai-processing-ms": "1"}
        if not body.get("stream"):
            return self._send_json(200, {
                "id": completion_id,
                "object": "chat.completion",
                "created": CREATED,
                "model": response_model,
                "choices": [{
                    "index": 0,
                    "message": {"role": "assistant", "content": REPLY_TEXT, "refusal": None, "annotations": []},
                    "logprobs": None,
                    "finish_reason": "stop",
                }],
                "usage": usage,
                "service_tier": "default",
                "system_fingerprint": "fp_stub",
            }, headers)

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(choices: list, usage_value: Any = None) -> str:
            payload = {"id": completion_id, "object": "chat.completion.chunk", "created": CREATED,
                       "model": response_model, "service_tier": "default", "system_fingerprint": "fp_stub",
                       "choices": choices}
            if include_usage:
                payload["usage"] = usage_value
            return f"data: {json.dumps(payload)}\n\n"

        self._start_sse(headers)
        self._chunk(chunk([{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": None},
                            "logprobs": None, "finish_reason": None}]))
        words = REPLY_TEXT.split(" ")
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            self._chunk(chunk([{"index": 0, "delta": {"content": piece}, "logprobs": None, "finish_reason": None}]))
        self._chunk(chunk([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]))
        if include_usage:
            self._chunk(chunk([], usage))
        self._chunk("data: [DONE]\n\n")
        self._end_chunks()

    def _openai_embeddings(self, body: dict, request_id: str) -> None:
        model = body.get("model")
        if self._openai_failure(model, request_id):
            return
        inputs = _embedding_inputs(body.get("input"))
        dims = body.get("dimensions") or EMBEDDING_DEFAULT_DIMENSIONS
        as_base64 = body.get("encoding_format") == "base64"
        data = []
        for index, item in enumerate(inputs):
            vector = [round(((index + 1) * (d + 1)) % 7 / 7.0, 4) for d in range(dims)]
            embedding: Any = vector
            if as_base64:
                embedding = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        self._send_json(200, {
            "object": "list",
            "data": data,
            "model": model,  # the real API answers with the requested name for embeddings
            "usage": expected_embeddings_usage(body.get("input")),
        }, {"x-request-id": request_id})

    # ---- Anthropic

    def _anthropic_error(self, status: int, type_: str, message: str, request_id: str) -> None:
        self._send_json(status, {"type": "error", "error": {"type": type_, "message": message},
                                 "request_id": request_id}, {"request-id": request_id})

    def _anthropic_messages(self, body: dict, n: int, request_id: str) -> None:
        model = body.get("model")
        if model == MISSING_MODEL:
            return self._anthropic_error(404, "not_found_error", f"model: {model}", request_id)
        if model == FAIL_MODEL:
            return self._anthropic_error(500, "api_error", "Internal server error", request_id)
        response_model = f"{model}{RESPONSE_MODEL_SUFFIX['anthropic']}"
        usage = expected_anthropic_usage(body.get("messages") or [], body.get("system"))
        message_id = f"msg_stub_{n}"
        headers = {"request-id": request_id, "anthropic-organization-id": "org-stub"}
        full_usage = {
            **usage,
            "cache_creation": {"ephemeral_5m_input_tokens": usage["cache_creation_input_tokens"],
                               "ephemeral_1h_input_tokens": 0},
            "server_tool_use": None,
            "service_tier": "standard",
        }
        if not body.get("stream"):
            return self._send_json(200, {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": response_model,
                "content": [{"type": "text", "text": REPLY_TEXT}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": full_usage,
            }, headers)

        def event(name: str, payload: dict) -> str:
            return f"event: {name}\ndata: {json.dumps(payload)}\n\n"

        self._start_sse(headers)
        self._chunk(event("message_start", {"type": "message_start", "message": {
            "id": message_id, "type": "message", "role": "assistant", "model": response_model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {**full_usage, "output_tokens": 1}}}))
        self._chunk(event("content_block_start", {"type": "content_block_start", "index": 0,
                                                  "content_block": {"type": "text", "text": ""}}))
        self._chunk(event("ping", {"type": "ping"}))
        for i, word in enumerate(REPLY_TEXT.split(" ")):
            piece = word if i == 0 else " " + word
            self._chunk(event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                      "delta": {"type": "text_delta", "text": piece}}))
        self._chunk(event("content_block_stop", {"type": "content_block_stop", "index": 0}))
        self._chunk(event("message_delta", {"type": "message_delta",
                                            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                            "usage": {
                                                "input_tokens": usage["input_tokens"],
                                                "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
                                                "cache_read_input_tokens": usage["cache_read_input_tokens"],
                                                "output_tokens": usage["output_tokens"],
                                                "server_tool_use": None}}))
        self._chunk(event("message_stop", {"type": "message_stop"}))
        self._end_chunks()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    stub: "ProviderStub"

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client closing its keep-alive connection is normal; anything else is printed as usual.
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


class ProviderStub:
    """The stub server. A context manager; ``start()``/``stop()`` for explicit control."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self.requests: list[dict] = []

    def _record(self, method: str, path: str, headers: dict[str, str], body: Any) -> int:
        with self._lock:
            n = next(self._counter)
            self.requests.append({"n": n, "method": method, "path": path, "headers": headers, "body": body,
                                  "time": time.time()})
            return n

    def start(self) -> "ProviderStub":
        if self._server is not None:
            return self
        server = _Server((self._host, self._port), _Handler)
        server.stub = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="provider-stub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "ProviderStub":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("stub not started")
        return self._server.server_address[1]

    @property
    def host(self) -> str:
        return self._host

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``: the Anthropic client's ``base_url``."""
        return f"http://{self._host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """``base_url + "/v1"``: the OpenAI client's ``base_url``."""
        return self.base_url + "/v1"


if __name__ == "__main__":  # manual check: python provider_stub.py
    with ProviderStub() as stub:
        print("stub listening on", stub.base_url)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
