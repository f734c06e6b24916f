"""One typed settings object, read from the environment.

Every default lives in `Settings` below with a comment saying why; the README's
configuration table documents the same names. Nothing here opens a connection.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ingest.config import ContextKeys, IngestConfig


class ConfigError(ValueError):
    """A setting has a value the service cannot use; the message names the variable."""


def default_data_dir() -> Path:
    # XDG data home, so `ai-usage serve` works from any directory and keeps
    # its data in one predictable place.
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "ai-usage"


def default_clickhouse_url() -> str:
    return f"chdb://{default_data_dir() / 'clickhouse'}"


def _csv(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


@dataclass(frozen=True)
class Settings:
    # Storage. chdb:///abs/path is ClickHouse embedded in this process (the
    # default: no server to run); http(s)://user:pass@host:port/db is a server.
    clickhouse_url: str = field(default_factory=default_clickhouse_url)
    # Rows older than this are dropped by the table TTL; 0 keeps them forever.
    retention_days: int = 400
    # Analytics bearer keys (or sha256:<hex> digests of them); with none, and
    # no key file, the analytics API is open.
    api_keys: tuple[str, ...] = ()
    # A file of analytics keys, one per line, re-read when it changes.
    api_keys_file: str | None = None
    # Serving without keys on a non-loopback address is refused unless this
    # says the open mode is intended.
    allow_open: bool = False
    # Origins allowed to call the analytics API from a browser (the Umbraco
    # backoffice's origin). Nothing is allowed unless configured.
    cors_origins: tuple[str, ...] = ()
    # Umbraco backoffice tokens: the base URL of the Umbraco site whose users may
    # read the analytics with their own bearer token (its Management API is asked
    # who the user is). None: only analytics keys are accepted.
    umbraco_url: str | None = None
    # Section aliases that admit a user (any one of them); Umbraco.AI's section
    # is `ai`. Compared case-insensitively, whole aliases only.
    umbraco_sections: tuple[str, ...] = ("ai",)
    # How long Umbraco's answer about one token is reused. Short, because a user
    # whose section is taken away keeps access until it runs out.
    umbraco_cache_seconds: float = 60.0
    # How long to wait for Umbraco before answering 503; the backoffice waits
    # for our answer meanwhile.
    umbraco_timeout_seconds: float = 5.0
    log_level: str = "INFO"
    # One JSON object per line on stderr, for log collectors; `text` for people at a terminal.
    log_format: str = "json"
    ingest: IngestConfig = field(default_factory=IngestConfig)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        ingest_values: dict[str, Any] = {}
        for name, parse, attr in _INGEST_VARIABLES:
            if name in env:
                ingest_values[attr] = _parse(name, env[name], parse)
        keys = ContextKeys(**{
            attr: _parse(name, env[name], _csv) for name, attr in _CONTEXT_KEY_VARIABLES if name in env
        })
        values: dict[str, Any] = {}
        for name, parse, attr in _VARIABLES:
            if name in env:
                values[attr] = _parse(name, env[name], parse)
        settings = cls(ingest=IngestConfig(context_keys=keys, **ingest_values), **values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if not self.clickhouse_url.startswith(("chdb://", "http://", "https://")):
            raise ConfigError(
                "CLICKHOUSE_URL must start with chdb:// (embedded) or http(s):// (a ClickHouse server)"
            )
        if self.clickhouse_url.startswith("chdb://") and not self.clickhouse_url.startswith("chdb:///"):
            raise ConfigError("CLICKHOUSE_URL for embedded ClickHouse must be chdb:///absolute/path")
        if self.retention_days < 0:
            raise ConfigError("AI_USAGE_RETENTION_DAYS must be 0 (keep forever) or a positive number of days")
        self._validate_umbraco()
        try:
            self.ingest.validate()
        except ValueError as error:
            raise ConfigError(str(error)) from None

    def _validate_umbraco(self) -> None:
        if self.umbraco_url is not None:
            problem = _umbraco_url_problem(self.umbraco_url)
            if problem:
                raise ConfigError(f"AI_USAGE_UMBRACO_URL {problem}")
        if not self.umbraco_sections or not all(alias.strip() for alias in self.umbraco_sections):
            raise ConfigError("AI_USAGE_UMBRACO_SECTION needs at least one section alias (Umbraco.AI's is `ai`)")
        if not 0 <= self.umbraco_cache_seconds <= MAX_UMBRACO_CACHE_SECONDS:
            raise ConfigError(
                f"AI_USAGE_UMBRACO_CACHE_SECONDS must be between 0 (ask Umbraco every time) and {MAX_UMBRACO_CACHE_SECONDS}"
            )
        if not 0 < self.umbraco_timeout_seconds <= MAX_UMBRACO_TIMEOUT_SECONDS:
            raise ConfigError(f"AI_USAGE_UMBRACO_TIMEOUT_SECONDS must be above 0 and at most {MAX_UMBRACO_TIMEOUT_SECONDS}")

    @property
    def umbraco_tokens(self) -> bool:
        """Whether the analytics API accepts Umbraco backoffice tokens."""
        return self.umbraco_url is not None

    @property
    def embedded(self) -> bool:
        return self.clickhouse_url.startswith("chdb://")

    def open_surfaces(self, role: str) -> list[str]:
        """What a process of this role would serve to anyone, for want of keys."""
        surfaces = []
        if role in ("all", "api") and not (self.api_keys or self.api_keys_file or self.umbraco_tokens):
            surfaces.append("the analytics API")
        if role in ("all", "ingest") and not (self.ingest.ingest_keys or self.ingest.ingest_keys_file):
            surfaces.append("OTLP ingest")
        return surfaces

    def describe(self) -> dict[str, Any]:
        """Settings for a start-up log line: secrets replaced by their count."""
        described: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "api_keys":
                value = f"{len(value)} key(s)"  # never the keys themselves
            elif f.name in ("clickhouse_url", "umbraco_url") and value:
                value = redact_url(value)
            elif f.name == "ingest":
                value = value.describe()
            described[f.name] = value
        return described


def redact_url(url: str) -> str:
    """The URL without its password, for logs."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}"


# A removed section should stop working within the hour at the latest.
MAX_UMBRACO_CACHE_SECONDS = 3600
# Beyond this the backoffice's own request would long have given up.
MAX_UMBRACO_TIMEOUT_SECONDS = 60


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address) stays on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _umbraco_url_problem(url: str) -> str | None:
    """What is wrong with an Umbraco base URL, or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be the site's base URL, http(s)://host[:port][/path]"
    if parts.query or parts.fragment:
        return "must not have a query or fragment: give the site's base URL only"
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError:
        return "has a port that is not a TCP port"
    return None


def _parse(name: str, raw: str, parse: Any) -> Any:
    try:
        return parse(raw)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{name}={raw!r} is not valid: {error}") from None


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _flag(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _existing_file(raw: str) -> str | None:
    path = raw.strip()
    if not path:
        return None
    if not os.path.isfile(path):
        raise ValueError("no such file")
    return path


LOG_FORMATS = ("json", "text")


def _log_format(raw: str) -> str:
    value = raw.strip().lower()
    if value not in LOG_FORMATS:
        raise ValueError(f"must be one of {', '.join(LOG_FORMATS)}")
    return value


def _optional_url(raw: str) -> str | None:
    # Empty switches the mode off; a trailing slash would double the one the
    # endpoint path starts with.
    url = raw.strip().rstrip("/")
    return url or None


def _optional_port(raw: str) -> int | None:
    if raw.strip() in ("", "0", "off", "none"):
        return None
    port = int(raw)
    if not 0 < port < 65536:
        raise ValueError("must be a TCP port (1-65535) or 'off'")
    return port


_VARIABLES: tuple[tuple[str, Any, str], ...] = (
    ("CLICKHOUSE_URL", str.strip, "clickhouse_url"),
    ("AI_USAGE_RETENTION_DAYS", int, "retention_days"),
    ("AI_USAGE_API_KEYS", _csv, "api_keys"),
    ("AI_USAGE_API_KEYS_FILE", _existing_file, "api_keys_file"),
    ("AI_USAGE_ALLOW_OPEN", _flag, "allow_open"),
    ("AI_USAGE_CORS_ORIGINS", _csv, "cors_origins"),
    ("AI_USAGE_UMBRACO_URL", _optional_url, "umbraco_url"),
    ("AI_USAGE_UMBRACO_SECTION", _csv, "umbraco_sections"),
    ("AI_USAGE_UMBRACO_CACHE_SECONDS", float, "umbraco_cache_seconds"),
    ("AI_USAGE_UMBRACO_TIMEOUT_SECONDS", float, "umbraco_timeout_seconds"),
    ("AI_USAGE_LOG_LEVEL", lambda raw: raw.strip().upper(), "log_level"),
    ("AI_USAGE_LOG_FORMAT", _log_format, "log_format"),
)

_INGEST_VARIABLES: tuple[tuple[str, Any, str], ...] = (
    ("AI_USAGE_MAX_BODY_BYTES", _positive_int, "max_body_bytes"),
    ("AI_USAGE_MAX_IN_FLIGHT_SPANS", _positive_int, "max_in_flight_spans"),
    ("AI_USAGE_BATCH_MAX_SPANS", _positive_int, "batch_max_spans"),
    ("AI_USAGE_BATCH_LINGER_MS", int, "batch_linger_ms"),
    ("AI_USAGE_EXPORT_TIMEOUT_SECONDS", float, "export_timeout_seconds"),
    ("AI_USAGE_RETRY_AFTER_SECONDS", _positive_int, "retry_after_seconds"),
    ("AI_USAGE_CONTEXT_WINDOW_SECONDS", _positive_int, "context_window_seconds"),
    ("AI_USAGE_IGNORED_SCOPES", _csv, "ignored_scopes"),
    ("AI_USAGE_INGEST_KEYS", _csv, "ingest_keys"),
    ("AI_USAGE_INGEST_KEYS_FILE", _existing_file, "ingest_keys_file"),
    ("AI_USAGE_GRPC_PORT", _optional_port, "grpc_port"),
)

_CONTEXT_KEY_VARIABLES: tuple[tuple[str, str], ...] = (
    ("AI_USAGE_PROFILE_ID_KEYS", "profile_id"),
    ("AI_USAGE_PROFILE_ALIAS_KEYS", "profile_alias"),
    ("AI_USAGE_USER_ID_KEYS", "user_id"),
    ("AI_USAGE_USER_NAME_KEYS", "user_name"),
)


def environment_variables() -> frozenset[str]:
    """Every variable Settings reads (the README's configuration table lists them all)."""
    names = {"CLICKHOUSE_URL"}
    names.update(name for name, *_ in _VARIABLES + _INGEST_VARIABLES)
    names.update(name for name, _ in _CONTEXT_KEY_VARIABLES)
    return frozenset(names)
