"""Who may call the API: bearer keys per request, and the browser origins allowed by CORS."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from flask import Response, request

from app.auth import KeyRing, Verdict, check
from app.errors import problem


def bearer_guard(own: KeyRing, other: KeyRing) -> Callable[[], Response | None]:
    """A before_request hook: analytics keys pass, no/unknown key is 401, an ingest key 403."""

    def guard() -> Response | None:
        # A CORS preflight never carries credentials; it only asks what is allowed.
        if request.method == "OPTIONS":
            return None
        verdict = check(request.headers.get("Authorization"), own, other)
        if verdict in (Verdict.OPEN, Verdict.GRANTED):
            return None
        if verdict is Verdict.WRONG_KIND:
            return problem(403, "Forbidden", "an ingest key cannot read analytics; use a key from AI_USAGE_API_KEYS")
        return problem(
            401,
            "Unauthorized",
            f"{verdict.value}: send Authorization: Bearer <key from AI_USAGE_API_KEYS>",
            headers={"WWW-Authenticate": "Bearer"},
        )

    return guard


ALLOWED_METHODS = "GET, OPTIONS"
ALLOWED_HEADERS = "Authorization, Content-Type"
PREFLIGHT_MAX_AGE = "600"


def cors_headers(origins: Iterable[str], prefix: str) -> Callable[[Response], Response]:
    """An after_request hook allowing `origins` ('*' for any) to call routes under `prefix`."""
    allowed = frozenset(origins)

    def add_headers(response: Response) -> Response:
        origin = request.headers.get("Origin")
        if not allowed or not origin or not request.path.startswith(prefix):
            return response
        response.vary.add("Origin")
        if "*" not in allowed and origin not in allowed:
            return response
        response.headers["Access-Control-Allow-Origin"] = "*" if "*" in allowed else origin
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
            response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
            response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
        return response

    return add_headers
