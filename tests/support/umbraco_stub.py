"""A local stand-in for an Umbraco site's Management API: only `GET .../user/current`.

It knows a few tokens, answers the way Umbraco 14+ does (a current user with
`allowedSections`, or 401 with an empty body for a token it does not accept),
can be told to fail, and counts every call so tests can see the cache work.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from app.umbraco_tokens import CURRENT_USER_PATH

# How the stub answers one token: a user with these sections, or a failure.
EDITOR_TOKEN = "editor.with-ai-section_0123"
WRITER_TOKEN = "writer.without-ai-section_4567"
SHOUTING_TOKEN = "editor.with-AI-in-capitals_89"
LOOKALIKE_TOKEN = "editor.with-a-package-section-named-ai"
SERVER_ERROR_TOKEN = "umbraco.answers-500"
GARBAGE_TOKEN = "umbraco.answers-html"
REDIRECT_TOKEN = "umbraco.answers-302"
# Where the redirect points; a request arriving there means the token followed it.
REDIRECT_TARGET = "/elsewhere"


@dataclass(frozen=True)
class User:
    id: str
    name: str
    sections: tuple[str, ...]


USERS = {
    EDITOR_TOKEN: User("1e70c6f1-0c1f-4b0e-9a53-000000000001", "Editor", ("Umb.Section.Content", "Umb.Section.Media", "ai")),
    WRITER_TOKEN: User("1e70c6f1-0c1f-4b0e-9a53-000000000002", "Writer", ("Umb.Section.Content",)),
    SHOUTING_TOKEN: User("1e70c6f1-0c1f-4b0e-9a53-000000000003", "Shouting", ("AI",)),
    LOOKALIKE_TOKEN: User("1e70c6f1-0c1f-4b0e-9a53-000000000004", "Lookalike", ("MyPackage.Section.ai", "Umb.Section.ai")),
}


def current_user(user: User) -> dict:
    """A CurrentUserResponseModel as Umbraco serialises it (camelCase), trimmed to plausible values."""
    return {
        "email": f"{user.name.lower()}@example.org",
        "userName": f"{user.name.lower()}@example.org",
        "name": user.name,
        "userGroupIds": [{"id": "e5e7f6c8-7f9c-4b5b-8d5d-cf7c8c4de00a"}],
        "id": user.id,
        "languageIsoCode": "en-US",
        "documentStartNodeIds": [],
        "hasDocumentRootAccess": True,
        "mediaStartNodeIds": [],
        "hasMediaRootAccess": True,
        "avatarUrls": [],
        "languages": [],
        "hasAccessToAllLanguages": True,
        "hasAccessToSensitiveData": False,
        "fallbackPermissions": ["Umb.Document.Read"],
        "permissions": [],
        "allowedSections": list(user.sections),
        "isAdmin": False,
    }


class UmbracoStub:
    """The stub on a free loopback port, in a thread; `close()` stops it."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        # Authorization headers of requests to any other path (a followed redirect).
        self.stray: list[str] = []
        # How long every answer takes; tests raise it to see waits and timeouts.
        self.delay_seconds = 0.0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def total_calls(self) -> int:
        with self._lock:
            return sum(self.calls.values())

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _count(self, token: str) -> None:
        with self._lock:
            self.calls[token] += 1

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
                if self.path != CURRENT_USER_PATH:
                    stub.stray.append(self.headers.get("Authorization") or "")
                    self._send(404, b"")
                    return
                scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
                stub._count(token)
                time.sleep(stub.delay_seconds)
                if scheme == "Bearer" and token in USERS:
                    self._send(200, json.dumps(current_user(USERS[token])).encode())
                elif scheme == "Bearer" and token == SERVER_ERROR_TOKEN:
                    self._send(500, b'{"title":"An error occurred"}', {"Content-Type": "application/problem+json"})
                elif scheme == "Bearer" and token == REDIRECT_TOKEN:
                    self._send(302, b"", {"Location": REDIRECT_TARGET})
                elif scheme == "Bearer" and token == GARBAGE_TOKEN:
                    self._send(200, b"<html>Umbraco is starting</html>", {"Content-Type": "text/html"})
                else:
                    # What Umbraco's OpenIddict validation answers: 401, no body.
                    self._send(401, b"", {"WWW-Authenticate": 'Bearer error="invalid_token"'})

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (the timeout test)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's name
                pass  # quiet: the request line is noise in test output

        return Handler
