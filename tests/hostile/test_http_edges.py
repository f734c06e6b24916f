"""Very long query strings and header injection against the real `ai-usage serve` (gunicorn).

Raw sockets, so that what no HTTP client would send (CR or LF inside a value,
bare line feeds, conflicting lengths, junk Host headers, request lines past
every limit) reaches the server as written. Every answer must be well-formed
HTTP with a JSON body (problem JSON for the API and gunicorn's own refusals,
google.rpc.Status for OTLP), never a 5xx, never an HTML page, never a
header the request tried to inject, and the service keeps serving.
"""

from __future__ import annotations

import json
import socket

import pytest
import requests

API = "/umbraco/ai/management/api/v1"
SUMMARY = f"{API}/analytics/usage-summary"
DAY = "from=2025-03-10T00:00:00Z&to=2025-03-11T00:00:00Z"
LIMIT_REQUEST_LINE = 8190  # app/gunicorn_config.py
JSON_TYPES = ("application/json", "application/problem+json", "application/x-protobuf")


class Reply:
    def __init__(self, raw: bytes):
        self.raw = raw
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status_line = lines[0]
        self.status = int(lines[0].split()[1])
        self.headers = [tuple(part.strip() for part in line.split(":", 1)) for line in lines[1:]]

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)

    def names(self) -> set[str]:
        return {key.lower() for key, _ in self.headers}


def exchange(served, request: bytes, timeout: float = 10) -> Reply:
    """Send raw bytes on a new connection; read one whole response."""
    with socket.create_connection(("127.0.0.1", served.port), timeout=timeout) as sock:
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered and closed before the whole request was read: the answer is still there
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
            reply = _complete(data)
            if reply is not None:
                return reply
    assert data, f"no answer to {request[:120]!r}"
    return Reply(data)


def _complete(data: bytes) -> Reply | None:
    if b"\r\n\r\n" not in data:
        return None
    reply = Reply(data)
    length = reply.header("Content-Length")
    if length is not None and len(reply.body) >= int(length):
        return reply
    return None


def assert_json_answer(reply: Reply, *, allowed: tuple[int, ...] | None = None) -> None:
    where = reply.raw[:400]
    assert reply.status < 500, where
    if allowed:
        assert reply.status in allowed, where
    content_type = (reply.header("Content-Type") or "").split(";")[0]
    assert content_type in JSON_TYPES, where
    assert b"<html" not in reply.body.lower(), where
    if content_type != "application/x-protobuf":
        body = json.loads(reply.body)
        if content_type == "application/problem+json":
            assert body["status"] == reply.status and body["title"], where


def get(path: str, *headers: bytes) -> bytes:
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\n" + b"".join(h + b"\r\n" for h in headers) + b"Connection: close\r\n\r\n"


# --- very long query strings ------------------------------------------------------


def request_line_of(prefix: str, length: int) -> str:
    """A request target starting with `prefix`, padded with an SQL-looking value so its request line is `length` bytes."""
    filler = requests.utils.quote("x' OR 1=1 -- ", safe="") * (length // 10)
    return prefix + filler[: length - len("GET  HTTP/1.1") - len(prefix)]


@pytest.mark.parametrize("length", [1000, 4000, LIMIT_REQUEST_LINE])
@pytest.mark.parametrize(
    "prefix",
    [f"{SUMMARY}?to=2025-03-11T00:00:00Z&from=", f"{SUMMARY}?{DAY}&granularity=", f"{SUMMARY}?{DAY}&unknown=",
     f"{API}/audit-logs?searchText=", f"{API}/audit-logs?userId=", f"{API}/audit-logs/"],
)
def test_long_query_values_up_to_the_line_limit_reach_the_api(served, prefix, length):
    target = request_line_of(prefix, length)
    assert len(f"GET {target} HTTP/1.1") == length
    reply = exchange(served, get(target))
    assert_json_answer(reply, allowed=(200, 400, 404))


@pytest.mark.parametrize("length", [LIMIT_REQUEST_LINE + 1, 20_000, 1_000_000])
def test_a_request_line_past_the_limit_is_a_json_414(served, length):
    target = f"{SUMMARY}?{DAY}&pad=" + "a" * length
    reply = exchange(served, get(target))
    assert_json_answer(reply, allowed=(414,))
    assert json.loads(reply.body)["title"] == "URI Too Long"


def test_many_parameters_and_repeated_parameters(served):
    repeated = "&".join(["from=2025-03-10T00:00:00Z"] * 300)
    reply = exchange(served, get(f"{SUMMARY}?{repeated}&to=2025-03-11T00:00:00Z"))
    assert_json_answer(reply, allowed=(200, 400))
    many = "&".join(f"p{i}={i}" for i in range(700))
    reply = exchange(served, get(f"{SUMMARY}?{DAY}&{many}"))
    assert_json_answer(reply, allowed=(200, 400))


# --- headers ------------------------------------------------------------------------


INJECTED = "x-injected"
S = SUMMARY + "?" + DAY
# Each hostile request and the status it gets: gunicorn refuses malformed framing itself (400, 431),
# what it lets through reaches Flask, which ignores or refuses it. Keys are open on this service.
HEADER_CASES = {
    # CR/LF smuggled into a value: a second header line (harmless, nothing reflects it) or a broken one.
    "request id with CRLF": (get(S, b"X-Request-Id: abc\r\nX-Injected: 1"), 200),
    "request id with bare LF": (get(S, b"X-Request-Id: abc\nX-Injected: 1"), 400),
    "request id with bare CR": (get(S, b"X-Request-Id: abc\rX-Injected: 1"), 400),
    "request id with NUL": (get(S, b"X-Request-Id: abc\x00X-Injected: 1"), 400),
    "request id of 8000 bytes": (get(S, b"X-Request-Id: " + b"r" * 8000), 200),
    "authorization of 8000 bytes": (get(S, b"Authorization: Bearer " + b"k" * 8000), 200),
    "authorization past the field limit": (get(S, b"Authorization: Bearer " + b"k" * 10000), 431),
    "authorization with CRLF": (get(S, b"Authorization: Bearer a\r\nX-Injected: 1"), 200),
    "authorization not bearer": (get(S, b"Authorization: Basic Zm9vOmJhcg=="), 200),
    "authorization empty bearer": (get(S, b"Authorization: Bearer    "), 200),
    "authorization non-ascii": (get(S, "Authorization: Bearer clé-ünïcode".encode()), 200),
    "authorization twice": (get(S, b"Authorization: Bearer a", b"Authorization: Bearer b"), 200),
    "101 header fields": (get(S, *[b"X-F%d: v" % i for i in range(101)]), 431),
    "a 9000-byte header name": (get(S, b"X-" + b"n" * 9000 + b": v"), 431),
    "obsolete line folding": (get(S, b"X-Folded: a\r\n b"), 400),
    "header name with a space": (get(S, b"X Bad: 1"), 400),
    "header without a colon": (get(S, b"NoColonHere"), 400),
    "header name with non-token": (get(S, b"X-\x01Bad: 1"), 400),
    "host folded onto an injected line": (b"GET " + S.encode() + b" HTTP/1.1\r\nHost: evil.example\r\n\tX-Injected: 1\r\n"
                                          b"Connection: close\r\n\r\n", 400),
    "host with spaces and CR": (b"GET /health/live HTTP/1.1\r\nHost: a b\rc\r\nConnection: close\r\n\r\n", 400),
    "two hosts": (b"GET /health/live HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n", 400),
    "no host": (b"GET /health/live HTTP/1.1\r\nConnection: close\r\n\r\n", 200),
    "foreign host on a trailing slash": (b"GET " + API.encode() + b"/audit-logs/ HTTP/1.1\r\nHost: evil.example\r\n"
                                         b"Connection: close\r\n\r\n", 404),
    "foreign host on a double slash": (b"GET //evil.example/health/live HTTP/1.1\r\nHost: evil.example\r\n"
                                       b"Connection: close\r\n\r\n", 404),
    "absolute target": (b"GET http://evil.example/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200),
    "origin with CRLF": (get(S, b"Origin: https://a\r\nX-Injected: 1"), 200),
    "method junk": (b"G\x01T /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400),
    "unknown method": (b"BREW /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405),
    "HTTP/9.9": (b"GET /health/live HTTP/9.9\r\nHost: x\r\nConnection: close\r\n\r\n", 400),
    "a TLS hello": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 TLS hello\r\n\r\n", 400),
    "path with NUL and traversal": (get("/health/../../etc/passwd%00?x=%00%0d%0aX-Injected:%201"), 404),
    "path with encoded CRLF": (get(SUMMARY + "%0d%0aX-Injected:%201?" + DAY), 404),
    "non-ascii path": (b"GET /\xff\xfe/\xc3\xa9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400),
    "transfer-encoding gzip": (get("/health/live", b"Transfer-Encoding: gzip"), 400),
}


@pytest.mark.parametrize("case", list(HEADER_CASES))
def test_hostile_headers_get_a_json_answer_and_inject_nothing(served, case):
    request, status = HEADER_CASES[case]
    reply = exchange(served, request)
    assert_json_answer(reply, allowed=(status,))
    assert INJECTED not in reply.names(), reply.raw[:400]
    assert "evil" not in (reply.header("Location") or ""), reply.raw[:400]


# Headers of an OTLP export (an empty body unless the case says). gunicorn's own refusals are problem
# JSON (it cannot know the route); everything that reaches the receiver is a google.rpc.Status.
OTLP_CASES = {
    "duplicated content type": ([b"Content-Type: application/json", b"Content-Type: application/x-protobuf"], 400),
    "content type with CRLF": ([b"Content-Type: application/x-protobuf\r\nX-Injected: 1"], 200),
    "content type junk parameters": ([b"Content-Type: application/x-protobuf; charset=\"\\\"; a=b;;;"], 200),
    "content type of 8000 bytes": ([b"Content-Type: application/x-protobuf; p=" + b"x" * 8000], 200),
    "content length twice, different": ([b"Content-Type: application/x-protobuf", b"Content-Length: 0", b"Content-Length: 5"], 400),
    "content length negative": ([b"Content-Type: application/x-protobuf", b"Content-Length: -1"], 400),
    "content length huge": ([b"Content-Type: application/x-protobuf", b"Content-Length: 99999999999999999999"], 413),
    "content length and chunked": ([b"Content-Type: application/x-protobuf", b"Content-Length: 0", b"Transfer-Encoding: chunked"], 400),
    "content encoding with CRLF": ([b"Content-Type: application/x-protobuf", b"Content-Encoding: gzip\r\nX-Injected: 1"], 400),
    "content encoding junk": ([b"Content-Type: application/x-protobuf", b"Content-Encoding: gzip;\x01"], 400),
    "authorization of 8000 bytes": ([b"Content-Type: application/x-protobuf", b"Authorization: Bearer " + b"k" * 8000], 200),
}


@pytest.mark.parametrize("case", list(OTLP_CASES))
def test_hostile_headers_on_otlp_exports(served, case):
    headers, status = OTLP_CASES[case]
    length = [] if any(h.startswith(b"Content-Length") for h in headers) else [b"Content-Length: 0"]
    request = b"POST /v1/traces HTTP/1.1\r\nHost: localhost\r\n" + b"".join(h + b"\r\n" for h in headers + length)
    reply = exchange(served, request + b"Connection: close\r\n\r\n")
    assert_json_answer(reply, allowed=(status,))
    assert INJECTED not in reply.names()


def test_the_service_still_answers_after_the_hostile_requests(served):
    assert requests.get(f"{served.url}/health/ready", timeout=10).json()["status"] == "ready"
    response = requests.get(f"{served.url}{SUMMARY}?{DAY}", timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
