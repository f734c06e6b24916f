"""The one place that wires the service: `create_app(settings)`.

gunicorn (through `app.server`) and the tests both call it. Nothing is created
at import time.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from flask import Flask

from app.auth import KeyRing
from app.json_provider import OrjsonProvider
from app.settings import Settings, is_loopback, redact_url
from app.umbraco_tokens import UmbracoTokens
from clickhouse.client import Database
from clickhouse.migrate import migrate
from clickhouse.operations import OperationStore
from ingest.observe import NO_OBSERVER, ObservedStore
from ingest.pipeline import IngestService

if TYPE_CHECKING:
    from app.metrics import Metrics

log = logging.getLogger(__name__)

ROLES = ("all", "ingest", "api")


@dataclass
class Runtime:
    """What one service process holds, reachable as `app.extensions["ai_usage"]`."""

    settings: Settings
    database: Database
    role: str
    api_keys: KeyRing = field(default_factory=KeyRing)
    ingest_keys: KeyRing = field(default_factory=KeyRing)
    # Set when the analytics API admits Umbraco backoffice tokens (AI_USAGE_UMBRACO_URL).
    umbraco_tokens: UmbracoTokens | None = None
    ingest: IngestService | None = None
    metrics: Metrics | None = None
    grpc_port: int | None = None
    closers: list = field(default_factory=list)

    def close(self, timeout: float = 30.0) -> bool:
        """Stop taking exports, store what was accepted, release ClickHouse."""
        drained = True
        for closer in reversed(self.closers):
            try:
                closer()
            except Exception:  # noqa: BLE001 - keep closing the rest
                log.exception("error while shutting down")
        if self.ingest is not None:
            drained = self.ingest.close(timeout)
        self.database.close()
        return drained


def create_app(settings: Settings | None = None, role: str | None = None) -> Flask:
    role = role or os.environ.get("AI_USAGE_ROLE", "all")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.json = OrjsonProvider(app)

    database = Database(settings.clickhouse_url)
    database.ensure_database()
    applied = migrate(database.client(), settings.retention_days)
    if applied:
        log.info("applied migrations: %s", ", ".join(f"{m.version:04d}_{m.name}" for m in applied))
    if settings.embedded:
        # The engine died with the last process if it was killed: an insert it
        # cut short may have left the rollups without rows that operations holds.
        from app.api.dimensions import DIMENSIONS
        from clickhouse.analytics import EVERYTHING
        from clickhouse.reconcile import reconcile_recent

        reconcile_recent(database.client(), (EVERYTHING, *DIMENSIONS))

    runtime = Runtime(
        settings,
        database,
        role,
        api_keys=KeyRing(settings.api_keys, settings.api_keys_file),
        ingest_keys=KeyRing(settings.ingest.ingest_keys, settings.ingest.ingest_keys_file),
    )
    app.extensions["ai_usage"] = runtime

    # Imported here, not at the top: under gunicorn prometheus_client must be
    # imported after the master set PROMETHEUS_MULTIPROC_DIR (app/multiprocess.py).
    from app import errors, health, metrics, observability

    runtime.metrics = service_metrics = metrics.Metrics.from_environment()
    # First, so that every request, even one refused by a guard, has an id, an access line and metrics.
    observability.init_app(app, service_metrics)
    errors.init_app(app)
    health.init_app(app, runtime)
    metrics.init_app(app, service_metrics)

    if role in ("all", "ingest"):
        _start_ingest(app, runtime)

    if role in ("all", "api"):
        from app import api

        runtime.umbraco_tokens = _umbraco_tokens(settings)
        api.init_app(app, runtime)

    return app


def _umbraco_tokens(settings: Settings) -> UmbracoTokens | None:
    if settings.umbraco_url is None:
        return None
    parts = urlsplit(settings.umbraco_url)
    if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
        log.warning(
            "AI_USAGE_UMBRACO_URL is plain http to %s: backoffice tokens cross the network unencrypted; "
            "use https unless that network is private",
            parts.hostname,
        )
    log.info(
        "the analytics API admits Umbraco backoffice users with the section(s) %s, as %s tells",
        ", ".join(settings.umbraco_sections),
        redact_url(settings.umbraco_url),
    )
    return UmbracoTokens(
        settings.umbraco_url,
        settings.umbraco_sections,
        cache_seconds=settings.umbraco_cache_seconds,
        timeout_seconds=settings.umbraco_timeout_seconds,
    )


def _start_ingest(app: Flask, runtime: Runtime) -> None:
    from app.auth import ingest_authorizer
    from ingest.http import create_blueprint

    config = runtime.settings.ingest
    authorize = ingest_authorizer(runtime.ingest_keys, runtime.api_keys)
    observer = runtime.metrics or NO_OBSERVER
    store = ObservedStore(OperationStore(runtime.database, config.context_keys.all_keys()), observer)
    runtime.ingest = IngestService(config, store, runtime.settings.retention_days, observer=observer)
    runtime.ingest.start()
    app.register_blueprint(create_blueprint(runtime.ingest, config.max_body_bytes, authorize))
    if config.grpc_port is not None:
        from app.observability import GrpcRequestLog
        from ingest.grpc import GrpcReceiver

        receiver = GrpcReceiver(
            runtime.ingest, config.grpc_host, config.grpc_port, config.max_body_bytes,
            authorize=authorize, interceptors=(GrpcRequestLog(),),
        )
        receiver.start()
        runtime.grpc_port = receiver.port
        # Stopped before the writer drains, so no call arrives after the drain.
        runtime.closers.append(receiver.stop)


def runtime_of(app: Flask) -> Runtime:
    return app.extensions["ai_usage"]
