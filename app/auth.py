"""Bearer keys: kept only as SHA-256 digests, compared in constant time.

Two kinds exist, analytics keys and ingest keys. A route checks the presented
key against its own kind and tells "no key" (401), "unknown key" (401) and
"a key of the other kind" (403) apart.

A key entry is either the key itself or `sha256:<64 hex digits>`, its digest,
so a deployment's configuration need not hold the secret at all
(`printf %s "$KEY" | sha256sum`). Entries come from a comma-separated
variable and/or a file with one entry per line (`#` comments allowed); the
file is read again when it changes, so keys rotate without a restart: add
the new key, move clients over, remove the old one. Several keys of one kind
are active at once.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable

from ingest.errors import Forbidden, Unauthenticated

log = logging.getLogger(__name__)

_DIGEST_PREFIX = "sha256:"
_HEX = frozenset("0123456789abcdef")


class Verdict(enum.Enum):
    OPEN = "no keys configured"
    GRANTED = "granted"
    MISSING = "missing bearer key"
    UNKNOWN = "unknown key"
    WRONG_KIND = "key of the wrong kind"


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def entry_digest(entry: str) -> bytes:
    """The digest an entry stands for: given as `sha256:<hex>`, or computed from the key."""
    text = entry.strip()
    if text.lower().startswith(_DIGEST_PREFIX):
        hex_digest = text[len(_DIGEST_PREFIX) :].lower()
        if len(hex_digest) != 64 or not _HEX.issuperset(hex_digest):
            raise ValueError("a sha256: key entry needs 64 hex digits")
        return bytes.fromhex(hex_digest)
    return digest(text)


def read_entries(path: str) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.strip() and not line.strip().startswith("#")]


class KeyRing:
    """The active keys of one kind, as digests only."""

    # How often, at most, the file's modification time is looked at.
    FILE_CHECK_SECONDS = 1.0

    def __init__(self, entries: Iterable[str] = (), file: str | None = None):
        self._fixed = tuple(entry_digest(entry) for entry in entries if entry.strip())
        self._file = file
        self._from_file: tuple[bytes, ...] = ()
        self._file_stamp: float | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()
        if file:
            self._reload(force=True)

    def __bool__(self) -> bool:
        return bool(self._fixed or self._file)

    def __len__(self) -> int:
        return len(self._digests())

    def __contains__(self, presented: str) -> bool:
        candidate = digest(presented)
        # Compare against every key, without stopping at a match, so the time
        # taken says nothing about which key (or how much of one) matched.
        found = False
        for stored in self._digests():
            found |= hmac.compare_digest(candidate, stored)
        return found

    def _digests(self) -> tuple[bytes, ...]:
        if self._file and time.monotonic() - self._checked_at >= self.FILE_CHECK_SECONDS:
            self._reload()
        return self._fixed + self._from_file

    def _reload(self, force: bool = False) -> None:
        with self._lock:
            self._checked_at = time.monotonic()
            try:
                stamp = os.stat(self._file).st_mtime_ns
            except OSError as error:
                if force:
                    raise ValueError(f"cannot read the key file {self._file}: {error.strerror}") from None
                log.error("cannot read the key file %s (%s); keeping the keys read before", self._file, error.strerror)
                return
            if stamp == self._file_stamp:
                return
            try:
                self._from_file = tuple(entry_digest(entry) for entry in read_entries(self._file))
            except (OSError, ValueError) as error:
                if force:
                    raise ValueError(f"the key file {self._file} is not usable: {error}") from None
                log.error("the key file %s is not usable (%s); keeping the keys read before", self._file, error)
                return
            if self._file_stamp is not None:
                log.info("key file %s changed: %d key(s) active from it", self._file, len(self._from_file))
            self._file_stamp = stamp


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


def ingest_authorizer(own: KeyRing, other: KeyRing) -> Callable[[str | None], None] | None:
    """The check both OTLP transports run on each export; None when ingest is open."""
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
