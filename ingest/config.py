"""Configuration of the ingest pipeline, with every default in one place.

`app.settings` fills this from the environment; the pipeline only reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any

MiB = 1024 * 1024


@dataclass(frozen=True)
class ContextKeys:
    """Attribute keys that feed an operation's context, highest priority first.

    Umbraco.AI's own tags come first; the other emitters' user keys follow so
    that an Umbraco tag anywhere on the span's ancestry wins over them.
    """

    profile_id: tuple[str, ...] = ("umbraco.ai.profile.id",)
    profile_alias: tuple[str, ...] = ("umbraco.ai.profile.alias",)
    user_id: tuple[str, ...] = (
        "umbraco.ai.user.id",
        "user.id",
        "enduser.id",
        "gen_ai.user",
        "llm.user",
        "traceloop.association.properties.user_id",
    )
    user_name: tuple[str, ...] = ("umbraco.ai.user.name", "user.name", "user.full_name")
    feature_type: tuple[str, ...] = ("umbraco.ai.feature.type",)
    feature_id: tuple[str, ...] = ("umbraco.ai.feature.id",)
    entity_id: tuple[str, ...] = ("umbraco.ai.entity.id",)
    entity_type: tuple[str, ...] = ("umbraco.ai.entity.type",)

    def items(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """(operation field, keys) pairs, in a fixed order."""
        return self._items

    @cached_property
    def _items(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        # Read for every operation; dataclasses.fields() is slow to call that often.
        return tuple((f.name, getattr(self, f.name)) for f in fields(self))

    @cached_property
    def empty_context(self) -> tuple[str, ...]:
        """The context of an operation that no key reaches: every field empty."""
        return ("",) * len(self._items)

    def all_keys(self) -> frozenset[str]:
        return frozenset(key for _, keys in self.items() for key in keys)


@dataclass(frozen=True)
class IngestConfig:
    # Limit on a request body after decompression (OTLP's collector uses the
    # same order of magnitude); above it the export is answered 413.
    max_body_bytes: int = 64 * MiB
    # Spans accepted but not yet stored; above it exports are answered 503 so
    # memory stays bounded under overload.
    max_in_flight_spans: int = 200_000
    # Group commit: at most this many spans per ClickHouse insert...
    batch_max_spans: int = 100_000
    # ...and a short wait for more exports to join an insert, which keeps the
    # insert rate near ClickHouse's advice (about one per second) under load.
    batch_linger_ms: int = 25
    # How long an export waits for its rows to be stored before it is answered
    # 503: below the Python exporter's 10 s timeout, so the client retries.
    export_timeout_seconds: float = 8.0
    # Retry-After on 503; OTLP clients give up after ~10 s, so keep it short.
    retry_after_seconds: int = 2
    # How long an operation waits for an ancestor span carrying its context
    # (Umbraco.AI tags the request span, which is exported after the call).
    context_window_seconds: int = 120
    # Instrumentation scopes whose spans are dropped, for applications that
    # run two instrumentations of the same client (see README).
    ignored_scopes: tuple[str, ...] = ()
    # Bearer keys for OTLP exports (or sha256:<hex> digests); with none, and
    # no key file, ingest is open.
    ingest_keys: tuple[str, ...] = ()
    # A file of ingest keys, one per line, re-read when it changes.
    ingest_keys_file: str | None = None
    # OTLP/gRPC port (4317 by convention); None serves OTLP/HTTP only.
    grpc_port: int | None = None
    # Address the gRPC server binds; `ai-usage serve --host` sets it too.
    grpc_host: str = "127.0.0.1"
    context_keys: ContextKeys = field(default_factory=ContextKeys)

    def validate(self) -> None:
        if self.batch_linger_ms < 0:
            raise ValueError("AI_USAGE_BATCH_LINGER_MS must not be negative")
        if self.export_timeout_seconds <= 0:
            raise ValueError("AI_USAGE_EXPORT_TIMEOUT_SECONDS must be positive")

    def describe(self) -> dict[str, Any]:
        described = {f.name: getattr(self, f.name) for f in fields(self)}
        described["ingest_keys"] = f"{len(self.ingest_keys)} key(s)"
        described["context_keys"] = dict(self.context_keys.items())
        return described
