"""Who may call the API: bearer keys per request, and the browser origins allowed by CORS."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from flask import Response, request

from app.auth import KeyRing, Verdict, bearer_token, check
from app.errors import problem
from app.umbraco_tokens import TokenVerdict, UmbracoTokens, UmbracoUnavailable


def bearer_guard(
    own: KeyRing, other: KeyRing, umbraco: UmbracoTokens | None = None, retry_after: str = "2"
) -> Callable[[], Response | None]:
    """A before_request hook: analytics keys pass, no/unknown key is 401, an ingest key 403.

    With `umbraco` (token mode), a bearer that is no key of ours is a backoffice
    user's token: Umbraco decides (401 not valid, 403 section missing), and
    503 when it cannot be asked.
    """

    def guard() -> Response | None:
        # A CORS preflight never carries credentials; it only asks what is allowed.
        if request.method == "OPTIONS":
            return None
        if umbraco is not None:
            return _token_mode(umbraco, own, other, retry_after)
        verdict = check(request.headers.get("Authorization"), own, other)
        if verdict in (Verdict.OPEN, Verdict.GRANTED):
            return None
        if verdict is Verdict.WRONG_KIND:
            return _ingest_key_refused()
        return _unauthorized(f"{verdict.value}: send Authorization: Bearer <key from AI_USAGE_API_KEYS>")

    return guard


def _token_mode(umbraco: UmbracoTokens, own: KeyRing, other: KeyRing, retry_after: str) -> Response | None:
    token = bearer_token(request.headers.get("Authorization"))
    if token is None:
        return _unauthorized(f"{Verdict.MISSING.value}: {_TOKEN_HINT}")
    # Our own keys are judged here, so they never travel to Umbraco.
    if token in own:
        return None
    if token in other:
        return _ingest_key_refused()
    try:
        verdict = umbraco.verdict(token)
    except UmbracoUnavailable:
        return problem(
            503,
            "Service Unavailable",
            "Umbraco cannot be asked who the user is; retry shortly",
            headers={"Retry-After": retry_after},
        )
    if verdict is TokenVerdict.ADMITTED:
        return None
    if verdict is TokenVerdict.FORBIDDEN:
        sections = " or ".join(sorted(umbraco.sections))
        return problem(403, "Forbidden", f"the Umbraco user may not open the {sections} section")
    return _unauthorized(f"{verdict.value}: {_TOKEN_HINT}")


_TOKEN_HINT = "send Authorization: Bearer <Umbraco backoffice token or key from AI_USAGE_API_KEYS>"


def _unauthorized(detail: str) -> Response:
    return problem(401, "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


def _ingest_key_refused() -> Response:
    return problem(403, "Forbidden", "an ingest key cannot read analytics; use a key from AI_USAGE_API_KEYS")


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
