"""Umbraco backoffice tokens: the analytics API admits a backoffice user on their own token.

The service cannot read Umbraco's tokens itself, so it asks the site that issued
them: `GET <site>/umbraco/management/api/v1/user/current` with the presented
token. Umbraco answers 401 for a token it does not accept, and otherwise the
current user (`CurrentUserResponseModel`), whose `allowedSections` lists the
aliases of every section the user's groups may open. Umbraco.AI's section alias
is `ai`; core sections come back as `Umb.Section.Content` and the like.

Aliases are compared whole (case-insensitively), never by a suffix: an alias
such as `MyPackage.Section.AI` belongs to another package and admits nobody.

A verdict is kept for a short while under the SHA-256 digest of the token (the
token itself is neither stored nor logged), so a dashboard's burst of requests
asks Umbraco once. Requests that arrive for one token while Umbraco is being
asked wait for that answer instead of asking again. When Umbraco cannot answer
(unreachable, slow, 5xx, a body that is not a current user) nothing is cached
and the caller answers 503.
"""

from __future__ import annotations

import enum
import hashlib
import http.client
import json
import logging
import re
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, NoReturn

log = logging.getLogger(__name__)

CURRENT_USER_PATH = "/umbraco/management/api/v1/user/current"

# RFC 6750's b64token: what a bearer token may look like. Anything else cannot
# be a token Umbraco issued, and is never put into a request header.
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")

# A current-user answer lists the user's granular permissions and can be large
# on big sites, but not this large.
MAX_ANSWER_BYTES = 8 * 1024 * 1024


class TokenVerdict(enum.Enum):
    ADMITTED = "admitted"
    UNAUTHENTICATED = "not a valid Umbraco backoffice token"
    FORBIDDEN = "the Umbraco user may not open the required section"


class UmbracoUnavailable(Exception):
    """Umbraco could not tell who the user is; the reason names no token."""


@dataclass
class _Inquiry:
    """One question to Umbraco in progress; others asking about the same token wait for it."""

    done: threading.Event = field(default_factory=threading.Event)
    verdict: TokenVerdict | None = None


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    # Following a redirect would send the user's token to wherever Umbraco (or
    # something in front of it) points; a redirect is a misconfigured URL instead.
    def redirect_request(
        self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str, headers: http.client.HTTPMessage, newurl: str
    ) -> None:
        return None


class UmbracoTokens:
    """Asks one Umbraco site about bearer tokens and remembers the answers briefly."""

    # Enough for every active backoffice user many times over; bounded so a
    # stream of made-up tokens cannot grow memory without limit.
    MAX_ENTRIES = 10_000

    def __init__(
        self,
        base_url: str,
        sections: Iterable[str],
        cache_seconds: float,
        timeout_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.endpoint = base_url.rstrip("/") + CURRENT_USER_PATH
        self.sections = frozenset(alias.strip().casefold() for alias in sections if alias.strip())
        self.cache_seconds = cache_seconds
        self.timeout_seconds = timeout_seconds
        self._clock = clock
        self._verdicts: OrderedDict[bytes, tuple[TokenVerdict, float]] = OrderedDict()
        self._inquiries: dict[bytes, _Inquiry] = {}
        self._lock = threading.Lock()
        self._opener = urllib.request.build_opener(_RefuseRedirects)

    def verdict(self, token: str) -> TokenVerdict:
        """Whether `token` belongs to a backoffice user allowed into one of the sections.

        Raises UmbracoUnavailable when Umbraco cannot be asked or answers nonsense.
        """
        if not _BEARER_TOKEN.fullmatch(token):
            return TokenVerdict.UNAUTHENTICATED
        key = hashlib.sha256(token.encode("ascii")).digest()
        with self._lock:
            cached = self._cached(key)
            if cached is not None:
                return cached
            under_way = self._inquiries.get(key)
            if under_way is None:
                inquiry = self._inquiries[key] = _Inquiry()
        if under_way is not None:
            return self._await(under_way)
        try:
            verdict = self._ask(token)
            inquiry.verdict = verdict
            with self._lock:
                self._remember(key, verdict)
            return verdict
        finally:
            with self._lock:
                del self._inquiries[key]
            inquiry.done.set()

    def _await(self, inquiry: _Inquiry) -> TokenVerdict:
        # The asking request gives up after the timeout; a little more here
        # covers the connect and the read it may both spend.
        if inquiry.done.wait(2 * self.timeout_seconds + 1) and inquiry.verdict is not None:
            return inquiry.verdict
        raise UmbracoUnavailable("Umbraco did not answer the request this one waited for")

    def _cached(self, key: bytes) -> TokenVerdict | None:
        entry = self._verdicts.get(key)
        if entry is None:
            return None
        verdict, expires = entry
        if self._clock() >= expires:
            del self._verdicts[key]
            return None
        return verdict

    def _remember(self, key: bytes, verdict: TokenVerdict) -> None:
        if self.cache_seconds <= 0:
            return
        self._verdicts[key] = (verdict, self._clock() + self.cache_seconds)
        self._verdicts.move_to_end(key)
        while len(self._verdicts) > self.MAX_ENTRIES:
            self._verdicts.popitem(last=False)  # the oldest answer goes first

    def _ask(self, token: str) -> TokenVerdict:
        request = urllib.request.Request(
            self.endpoint,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json", "User-Agent": "ai-usage"},
        )
        try:
            with self._opener.open(request, timeout=self.timeout_seconds) as response:
                body = response.read(MAX_ANSWER_BYTES + 1)
        except urllib.error.HTTPError as error:
            error.close()
            return self._judge_refusal(error.code)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            # URLError carries the socket error (refused, unresolvable, TLS);
            # OSError a timeout while reading, HTTPException a broken answer.
            reason = getattr(error, "reason", error)
            self._unavailable(f"cannot reach {self.endpoint}: {reason}")
        return self._judge_user(body)

    def _judge_refusal(self, status: int) -> TokenVerdict:
        if status == 401:
            return TokenVerdict.UNAUTHENTICATED
        if status == 403:
            # Umbraco knows the user but will not even show them themselves.
            return TokenVerdict.FORBIDDEN
        if 300 <= status < 400:
            self._unavailable(f"{self.endpoint} answered a redirect ({status}); set AI_USAGE_UMBRACO_URL to the final address")
        if status == 404:
            self._unavailable(f"{self.endpoint} does not exist (404): is AI_USAGE_UMBRACO_URL an Umbraco 14+ site?")
        self._unavailable(f"{self.endpoint} answered {status}")

    def _judge_user(self, body: bytes) -> TokenVerdict:
        if len(body) > MAX_ANSWER_BYTES:
            self._unavailable(f"{self.endpoint} answered more than {MAX_ANSWER_BYTES} bytes")
        try:
            user = json.loads(body)
        except ValueError:
            self._unavailable(f"{self.endpoint} did not answer JSON")
        sections = user.get("allowedSections") if isinstance(user, dict) else None
        if not isinstance(sections, list) or not all(isinstance(alias, str) for alias in sections):
            self._unavailable(f"{self.endpoint} did not answer a current user with allowedSections")
        if self.sections.isdisjoint(alias.casefold() for alias in sections):
            log.info("Umbraco user %s lacks the section(s) %s", user.get("id"), ", ".join(sorted(self.sections)))
            return TokenVerdict.FORBIDDEN
        return TokenVerdict.ADMITTED

    def _unavailable(self, reason: str) -> NoReturn:
        log.warning("cannot check an Umbraco backoffice token: %s", reason)
        raise UmbracoUnavailable(reason)
