"""gunicorn's own error answers as problem JSON, like every other answer of the service.

gunicorn answers some requests itself, before Flask sees them: a request line
longer than `limit_request_line` (414), too many or too large header fields
(431), a malformed request line or header, a conflicting Content-Length or an
unsupported Transfer-Encoding (400 or 501). It writes those answers with
`gunicorn.util.write_error`, as a small HTML page. `install()` replaces that
function, in the worker process, with one that writes the same status as an
`application/problem+json` body (app/errors.py's shape), so that no answer of
the service is HTML. gunicorn's message goes in `detail`, JSON-escaped, and
the connection is closed as before.
"""

from __future__ import annotations

import json

from gunicorn import util

from app.errors import PROBLEM_JSON


def write_problem(sock, status_int: int, reason: str, mesg: str) -> None:
    """`gunicorn.util.write_error`'s signature, answering with a problem body."""
    body: dict[str, object] = {"status": status_int, "title": reason}
    if mesg:
        body["detail"] = mesg
    payload = json.dumps(body).encode("utf-8")
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        f"Content-Type: {PROBLEM_JSON}\r\n"
        f"Content-Length: {len(payload)}\r\n"
        "\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + payload)


def install() -> None:
    if not callable(getattr(util, "write_error", None)):
        raise RuntimeError("gunicorn.util.write_error is gone: gunicorn's error pages can no longer be made JSON")
    util.write_error = write_problem
