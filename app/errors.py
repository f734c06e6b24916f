"""Every HTTP error leaves as JSON (RFC 9457 problem details), never an HTML page.

The analytics API and the health endpoints share this one shape; OTLP routes
answer with google.rpc.Status bodies instead (see ingest.http).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


def problem(status: int, title: str, detail: str | None = None, errors: Any = None, headers: dict | None = None) -> Response:
    body: dict[str, Any] = {"status": status, "title": title}
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = errors
    response = Response(json.dumps(body), status=status, content_type=PROBLEM_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def from_http_exception(error: HTTPException) -> Response:
    """A werkzeug/Flask HTTP error as a problem, keeping its headers (Allow, WWW-Authenticate...)."""
    data = getattr(error, "data", None) or {}
    errors = data.get("messages") if isinstance(data, dict) else None
    detail = data.get("detail") if isinstance(data, dict) and data.get("detail") else error.description
    headers = {}
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            headers[name] = value
    return problem(error.code or 500, error.name, detail, errors, headers)


def init_app(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def handle_http_exception(error: HTTPException) -> Response:
        return from_http_exception(error)

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception) -> Response:
        log.exception("unhandled error")
        return from_http_exception(InternalServerError())
