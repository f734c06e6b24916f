"""Bearer keys: kept only as SHA-256 hashes, compared in constant time.

Two kinds exist, analytics keys and ingest keys. A route checks the presented
key against its own kind and tells "no key" (401), "unknown key" (401) and
"a key of the other kind" (403) apart. Several keys of one kind can be active
at once, which is how keys are rotated without downtime.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Callable, Iterable

from ingest.errors import Forbidden, Unauthenticated


class Verdict(enum.Enum):
    OPEN = "no keys configured"
    GRANTED = "granted"
    MISSING = "missing bearer key"
    UNKNOWN = "unknown key"
    WRONG_KIND = "key of the wrong kind"


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class KeyRing:
    def __init__(self, keys: Iterable[str] = ()):
        self._hashes = tuple(digest(key) for key in keys if key)

    def __bool__(self) -> bool:
        return bool(self._hashes)

    def __len__(self) -> int:
        return len(self._hashes)

    def __contains__(self, presented: str) -> bool:
        candidate = digest(presented)
        # Compare against every key, without stopping at a match, so the time
        # taken says nothing about which key (or how much of one) matched.
        found = False
        for stored in self._hashes:
            found |= hmac.compare_digest(candidate, stored)
        return found


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def check(authorization: str | None, own: KeyRing, other: KeyRing) -> Verdict:
    """Judge a request's Authorization header for a route guarded by `own` keys."""
    if not own:
        return Verdict.OPEN
    token = bearer_token(authorization)
    if token is None:
        return Verdict.MISSING
    if token in own:
        return Verdict.GRANTED
    if token in other:
        return Verdict.WRONG_KIND
    return Verdict.UNKNOWN


def ingest_authorizer(ingest_keys: Iterable[str], analytics_keys: Iterable[str]) -> Callable[[str | None], None] | None:
    """The check both OTLP transports run on each export; None when ingest is open."""
    own, other = KeyRing(ingest_keys), KeyRing(analytics_keys)
    if not own:
        return None

    def authorize(authorization: str | None) -> None:
        verdict = check(authorization, own, other)
        if verdict is Verdict.GRANTED:
            return
        if verdict is Verdict.WRONG_KIND:
            raise Forbidden("an analytics key cannot export spans; use an ingest key")
        raise Unauthenticated(f"{verdict.value}: send Authorization: Bearer <ingest key>")

    return authorize
