"""Settings from the environment, and what the server refuses to start with."""

from __future__ import annotations

import pytest

from app.server import check_process_model
from app.settings import ConfigError, Settings

SERVER = "http://user:secret@clickhouse:8123/ai_usage"


def test_defaults_are_embedded_and_closed_to_the_network():
    settings = Settings.from_env({})
    assert settings.embedded and not settings.allow_open
    assert settings.open_surfaces("all") == ["the analytics API", "OTLP ingest"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CLICKHOUSE_URL": "mysql://x"}, "CLICKHOUSE_URL"),
        ({"CLICKHOUSE_URL": "chdb://relative"}, "absolute"),
        ({"AI_USAGE_RETENTION_DAYS": "-1"}, "RETENTION"),
        ({"AI_USAGE_MAX_BODY_BYTES": "0"}, "AI_USAGE_MAX_BODY_BYTES"),
        ({"AI_USAGE_GRPC_PORT": "70000"}, "AI_USAGE_GRPC_PORT"),
        ({"AI_USAGE_ALLOW_OPEN": "maybe"}, "AI_USAGE_ALLOW_OPEN"),
        ({"AI_USAGE_API_KEYS_FILE": "/no/such/file"}, "AI_USAGE_API_KEYS_FILE"),
        ({"AI_USAGE_UMBRACO_URL": "cms.example.org"}, "AI_USAGE_UMBRACO_URL"),
        ({"AI_USAGE_UMBRACO_URL": "ftp://cms.example.org"}, "AI_USAGE_UMBRACO_URL"),
        ({"AI_USAGE_UMBRACO_URL": "https://"}, "AI_USAGE_UMBRACO_URL"),
        ({"AI_USAGE_UMBRACO_URL": "https://cms.example.org:99999"}, "AI_USAGE_UMBRACO_URL"),
        ({"AI_USAGE_UMBRACO_URL": "https://cms.example.org/?culture=en"}, "AI_USAGE_UMBRACO_URL"),
        ({"AI_USAGE_UMBRACO_SECTION": " , "}, "AI_USAGE_UMBRACO_SECTION"),
        ({"AI_USAGE_UMBRACO_CACHE_SECONDS": "soon"}, "AI_USAGE_UMBRACO_CACHE_SECONDS"),
        ({"AI_USAGE_UMBRACO_CACHE_SECONDS": "-1"}, "AI_USAGE_UMBRACO_CACHE_SECONDS"),
        ({"AI_USAGE_UMBRACO_CACHE_SECONDS": "86400"}, "AI_USAGE_UMBRACO_CACHE_SECONDS"),
        ({"AI_USAGE_UMBRACO_CACHE_SECONDS": "nan"}, "AI_USAGE_UMBRACO_CACHE_SECONDS"),
        ({"AI_USAGE_UMBRACO_TIMEOUT_SECONDS": "0"}, "AI_USAGE_UMBRACO_TIMEOUT_SECONDS"),
        ({"AI_USAGE_UMBRACO_TIMEOUT_SECONDS": "120"}, "AI_USAGE_UMBRACO_TIMEOUT_SECONDS"),
    ],
)
def test_bad_values_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_umbraco_tokens_are_off_by_default():
    settings = Settings.from_env({})
    assert not settings.umbraco_tokens and settings.umbraco_url is None
    assert settings.umbraco_sections == ("ai",)
    assert settings.umbraco_cache_seconds == 60 and settings.umbraco_timeout_seconds == 5
    assert not Settings.from_env({"AI_USAGE_UMBRACO_URL": "  "}).umbraco_tokens, "empty means off"


def test_umbraco_settings_are_read():
    settings = Settings.from_env({
        "AI_USAGE_UMBRACO_URL": " https://cms.example.org/site/ ",
        "AI_USAGE_UMBRACO_SECTION": "ai, Uai.Section.AI",
        "AI_USAGE_UMBRACO_CACHE_SECONDS": "0",
        "AI_USAGE_UMBRACO_TIMEOUT_SECONDS": "2.5",
    })
    assert settings.umbraco_tokens
    assert settings.umbraco_url == "https://cms.example.org/site", "no trailing slash to double"
    assert settings.umbraco_sections == ("ai", "Uai.Section.AI")
    assert settings.umbraco_cache_seconds == 0 and settings.umbraco_timeout_seconds == 2.5


def test_secrets_stay_out_of_the_description():
    settings = Settings.from_env({"CLICKHOUSE_URL": SERVER, "AI_USAGE_API_KEYS": "k1,k2", "AI_USAGE_INGEST_KEYS": "i1"})
    text = str(settings.describe())
    assert "secret" not in text and "k1" not in text and "i1" not in text
    assert "2 key(s)" in text and "user:***@clickhouse" in text
    umbraco = Settings.from_env({"AI_USAGE_UMBRACO_URL": "https://admin:hunter2@cms.example.org"}).describe()
    assert umbraco["umbraco_url"] == "https://admin:***@cms.example.org"


def test_several_workers_need_a_clickhouse_server():
    with pytest.raises(ConfigError, match="one process"):
        check_process_model(Settings.from_env({}), workers=2, host="127.0.0.1")
    check_process_model(Settings.from_env({"CLICKHOUSE_URL": SERVER}), workers=4, host="127.0.0.1")


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "example.org"])
def test_an_open_service_on_the_network_is_refused_without_an_opt_in(host):
    with pytest.raises(ConfigError, match="without keys"):
        check_process_model(Settings.from_env({}), workers=1, host=host)
    check_process_model(Settings.from_env({"AI_USAGE_ALLOW_OPEN": "true"}), workers=1, host=host)
    keyed = Settings.from_env({"AI_USAGE_API_KEYS": "a", "AI_USAGE_INGEST_KEYS": "i"})
    check_process_model(keyed, workers=1, host=host)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_may_stay_open(host):
    check_process_model(Settings.from_env({}), workers=1, host=host)


def test_each_role_needs_the_keys_of_what_it_serves():
    only_ingest_keys = Settings.from_env({"AI_USAGE_INGEST_KEYS": "i"})
    check_process_model(only_ingest_keys, workers=1, host="0.0.0.0", role="ingest")
    with pytest.raises(ConfigError, match="the analytics API"):
        check_process_model(only_ingest_keys, workers=1, host="0.0.0.0", role="api")


@pytest.mark.parametrize("role", ["all", "api"])
def test_umbraco_tokens_guard_the_api_on_the_network(role):
    """Token mode is authentication: the analytics API is not open, so no opt-in is needed."""
    settings = Settings.from_env({"AI_USAGE_UMBRACO_URL": "https://cms.example.org", "AI_USAGE_INGEST_KEYS": "i"})
    assert settings.open_surfaces(role) == []
    check_process_model(settings, workers=1, host="0.0.0.0", role=role)
    with pytest.raises(ConfigError, match="OTLP ingest"):
        check_process_model(Settings.from_env({"AI_USAGE_UMBRACO_URL": "https://cms.example.org"}), workers=1, host="0.0.0.0")
