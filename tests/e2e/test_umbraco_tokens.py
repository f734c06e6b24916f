"""Umbraco backoffice tokens on the analytics API, judged by a local stub of Umbraco's
current-user endpoint (tests/support/umbraco_stub.py): admitted with the `ai` section,
403 without it, 401 for a token Umbraco refuses, 503 when Umbraco cannot answer.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from app.umbraco_tokens import TokenVerdict, UmbracoTokens, UmbracoUnavailable
from tests.support.service import InProcessService, free_port, service_settings
from tests.support.umbraco_stub import (
    EDITOR_TOKEN,
    GARBAGE_TOKEN,
    LOOKALIKE_TOKEN,
    REDIRECT_TOKEN,
    SERVER_ERROR_TOKEN,
    SHOUTING_TOKEN,
    WRITER_TOKEN,
    UmbracoStub,
)

BASE = "/umbraco/ai/management/api/v1"
SUMMARY = f"{BASE}/analytics/usage-summary"
AUDIT_LOGS = f"{BASE}/audit-logs"
DAY = {"from": "2025-03-10T00:00:00Z", "to": "2025-03-11T00:00:00Z"}
API_KEY, INGEST_KEY = "analytics-key-for-token-mode", "ingest-key-for-token-mode"
UNKNOWN_TOKEN = "a.token-umbraco-never-issued"
FAILING_TOKENS = (SERVER_ERROR_TOKEN, GARBAGE_TOKEN, REDIRECT_TOKEN)


@pytest.fixture(scope="module")
def umbraco():
    stub = UmbracoStub()
    yield stub
    stub.close()


@pytest.fixture(autouse=True)
def prompt_umbraco(umbraco):
    """Each test starts with a stub that answers at once."""
    umbraco.delay_seconds = 0.0


@pytest.fixture(scope="module")
def shared(chdb_dir, umbraco):
    """One token-mode service for the tests that do not count Umbraco calls."""
    service = InProcessService(
        service_settings(chdb_dir, umbraco_url=umbraco.url, api_keys=(API_KEY,), ingest_keys=(INGEST_KEY,)), role="api"
    )
    yield service
    service.close()


@pytest.fixture
def fresh(make_service, umbraco):
    """A token-mode service with an empty cache, so Umbraco calls can be counted."""

    def start(**overrides) -> InProcessService:
        settings = {"umbraco_url": umbraco.url, "api_keys": (API_KEY,), "ingest_keys": (INGEST_KEY,), **overrides}
        return make_service(role="api", **settings)

    return start


def get(service: InProcessService, authorization: str | None, path: str = SUMMARY) -> requests.Response:
    headers = {"Authorization": authorization} if authorization else {}
    return requests.get(f"{service.url}{path}", params=DAY, headers=headers, timeout=30)


def assert_problem(response: requests.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    return body


# --- Who is admitted ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [SUMMARY, AUDIT_LOGS])
@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (f"Bearer {EDITOR_TOKEN}", 200),
        (f"bearer {EDITOR_TOKEN}", 200),
        (f"Bearer {SHOUTING_TOKEN}", 200),  # "AI": aliases compare case-insensitively
        (f"Bearer {WRITER_TOKEN}", 403),  # a backoffice user, but not of the ai section
        (f"Bearer {LOOKALIKE_TOKEN}", 403),  # MyPackage.Section.ai is another package's section
        (f"Bearer {UNKNOWN_TOKEN}", 401),
        (None, 401),
        ("Bearer", 401),
        ("Basic YWRtaW46YWRtaW4=", 401),
    ],
)
def test_umbraco_decides_about_backoffice_tokens(shared, path, authorization, status):
    response = get(shared, authorization, path)
    if status == 200:
        assert response.status_code == 200, response.text
        return
    body = assert_problem(response, status)
    if status == 401:
        assert response.headers["WWW-Authenticate"] == "Bearer"
    if authorization == f"Bearer {WRITER_TOKEN}":
        assert "ai section" in body["detail"]


@pytest.mark.parametrize(("key", "status"), [(API_KEY, 200), (INGEST_KEY, 403)])
def test_our_own_keys_are_judged_without_asking_umbraco(shared, umbraco, key, status):
    assert get(shared, f"Bearer {key}").status_code == status
    assert umbraco.calls[key] == 0, "a key of ours never travels to Umbraco"


def test_a_malformed_bearer_is_refused_without_asking_umbraco(shared, umbraco):
    before = umbraco.total_calls
    assert_problem(get(shared, "Bearer two words"), 401)
    assert_problem(get(shared, "Bearer caf\u00e9".encode().decode("latin-1")), 401)
    assert umbraco.total_calls == before


def test_token_mode_closes_an_api_that_has_no_keys(fresh):
    service = fresh(api_keys=(), ingest_keys=())
    assert_problem(get(service, None), 401)
    assert get(service, f"Bearer {EDITOR_TOKEN}").status_code == 200


def test_the_openapi_document_describes_the_token_mode(shared):
    spec = requests.get(f"{shared.url}/openapi.json", timeout=10).json()
    description = spec["components"]["securitySchemes"]["bearerAuth"]["description"]
    assert "AI_USAGE_API_KEYS" in description and "Umbraco backoffice" in description and "`ai`" in description


# --- Caching --------------------------------------------------------------------------------------


def test_a_verdict_is_reused_within_the_cache_window(fresh, umbraco):
    service = fresh()
    for token, status in ((EDITOR_TOKEN, 200), (WRITER_TOKEN, 403), (UNKNOWN_TOKEN, 401)):
        before = umbraco.calls[token]
        for _ in range(3):
            assert get(service, f"Bearer {token}").status_code == status
        assert umbraco.calls[token] == before + 1, f"{status}: Umbraco asked once, then the cache answers"


def test_a_dashboard_burst_asks_umbraco_once(fresh, umbraco):
    service = fresh()
    umbraco.delay_seconds = 0.5  # the later requests arrive while the first is still asking
    before = umbraco.calls[SHOUTING_TOKEN]
    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(lambda _: get(service, f"Bearer {SHOUTING_TOKEN}").status_code, range(6)))
    assert statuses == [200] * 6
    assert umbraco.calls[SHOUTING_TOKEN] == before + 1


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_verdict_expires_after_the_cache_seconds(umbraco):
    clock = FakeClock()
    tokens = UmbracoTokens(umbraco.url, ["ai"], cache_seconds=60, timeout_seconds=5, clock=clock)
    before = umbraco.calls[EDITOR_TOKEN]
    assert tokens.verdict(EDITOR_TOKEN) is TokenVerdict.ADMITTED
    clock.now += 59.9
    assert tokens.verdict(EDITOR_TOKEN) is TokenVerdict.ADMITTED
    assert umbraco.calls[EDITOR_TOKEN] == before + 1
    clock.now += 0.1
    assert tokens.verdict(EDITOR_TOKEN) is TokenVerdict.ADMITTED
    assert umbraco.calls[EDITOR_TOKEN] == before + 2, "expired: Umbraco is asked again"


def test_cache_seconds_zero_asks_every_time(umbraco):
    tokens = UmbracoTokens(umbraco.url, ["ai"], cache_seconds=0, timeout_seconds=5)
    before = umbraco.calls[WRITER_TOKEN]
    for _ in range(3):
        assert tokens.verdict(WRITER_TOKEN) is TokenVerdict.FORBIDDEN
    assert umbraco.calls[WRITER_TOKEN] == before + 3


def test_the_cache_keeps_only_the_newest_answers(umbraco, monkeypatch):
    monkeypatch.setattr(UmbracoTokens, "MAX_ENTRIES", 2)
    tokens = UmbracoTokens(umbraco.url, ["ai"], cache_seconds=60, timeout_seconds=5)
    made_up = [f"made.up-token-{n}" for n in range(3)]
    for token in made_up:
        assert tokens.verdict(token) is TokenVerdict.UNAUTHENTICATED
    assert [umbraco.calls[token] for token in made_up] == [1, 1, 1]
    tokens.verdict(made_up[2])
    tokens.verdict(made_up[0])
    assert [umbraco.calls[token] for token in made_up] == [2, 1, 1], "the oldest answer was dropped, the newest kept"


def test_the_cache_holds_digests_not_tokens(umbraco):
    tokens = UmbracoTokens(umbraco.url, ["ai"], cache_seconds=60, timeout_seconds=5)
    tokens.verdict(EDITOR_TOKEN)
    held = repr(tokens.__dict__)
    assert EDITOR_TOKEN not in held


def test_the_sections_setting_decides(umbraco):
    legacy = UmbracoTokens(umbraco.url, ["Umb.Section.Content"], cache_seconds=0, timeout_seconds=5)
    assert legacy.verdict(WRITER_TOKEN) is TokenVerdict.ADMITTED
    assert legacy.verdict(SHOUTING_TOKEN) is TokenVerdict.FORBIDDEN


# --- When Umbraco cannot answer -------------------------------------------------------------------


@pytest.mark.parametrize("token", FAILING_TOKENS)
def test_an_umbraco_failure_is_503_and_never_cached(fresh, umbraco, token):
    service = fresh()
    before = umbraco.calls[token]
    for _ in range(2):
        response = get(service, f"Bearer {token}")
        assert_problem(response, 503)
        assert response.headers["Retry-After"].isdigit()
    assert umbraco.calls[token] == before + 2, "a failure is not a verdict: the next request asks again"
    assert umbraco.stray == [], "a redirect is not followed, so the token goes nowhere else"


def test_umbraco_down_is_503_while_api_keys_still_work(fresh):
    service = fresh(umbraco_url=f"http://127.0.0.1:{free_port()}")
    response = get(service, f"Bearer {EDITOR_TOKEN}")
    assert_problem(response, 503)
    assert response.headers["Retry-After"].isdigit()
    assert get(service, f"Bearer {API_KEY}").status_code == 200


def test_a_slow_umbraco_is_503_after_the_timeout(fresh, umbraco):
    service = fresh(umbraco_timeout_seconds=0.5)
    umbraco.delay_seconds = 3.0
    started = time.monotonic()
    assert_problem(get(service, f"Bearer {EDITOR_TOKEN}"), 503)
    assert time.monotonic() - started < 2.5, "answered at the timeout, not when Umbraco finally answers"


# --- Secrets --------------------------------------------------------------------------------------


def test_no_token_reaches_the_logs(fresh, umbraco, caplog):
    caplog.set_level(logging.DEBUG)
    service = fresh()
    down = fresh(umbraco_url=f"http://127.0.0.1:{free_port()}")
    tokens = (EDITOR_TOKEN, WRITER_TOKEN, LOOKALIKE_TOKEN, UNKNOWN_TOKEN, *FAILING_TOKENS)
    for token in tokens:
        get(service, f"Bearer {token}")
        get(down, f"Bearer {token}")
    messages = [record.getMessage() for record in caplog.records]
    assert any("cannot check an Umbraco backoffice token" in message for message in messages), "failures are logged"
    assert any("lacks the section" in message for message in messages), "refusals are logged"
    leaked = [(token, message) for token in tokens for message in messages if token in message]
    assert not leaked


def test_unavailable_names_no_token(umbraco):
    tokens = UmbracoTokens(umbraco.url, ["ai"], cache_seconds=60, timeout_seconds=5)
    with pytest.raises(UmbracoUnavailable) as raised:
        tokens.verdict(SERVER_ERROR_TOKEN)
    assert SERVER_ERROR_TOKEN not in str(raised.value) and "500" in str(raised.value)
