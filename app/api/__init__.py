"""The analytics API: flask-smorest blueprints under /umbraco/ai/management/api/v1.

`init_app` wires it: the OpenAPI document and Swagger UI, one blueprint per
resource (analytics, audit logs), bearer keys (and, when configured, Umbraco
backoffice tokens) on both, CORS for the origins in
AI_USAGE_CORS_ORIGINS, and the problem error shape for everything flask-smorest
answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from flask import Flask, Response
from werkzeug.exceptions import InternalServerError

from app.api import analytics, audit_logs, docs
from app.api.access import bearer_guard, cors_headers
from app.api.problems import API_BASE, ProblemApi
from app.errors import from_http_exception, problem

if TYPE_CHECKING:
    from app import Runtime
    from app.metrics import Metrics

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = "2"


def init_app(app: Flask, runtime: Runtime) -> None:
    settings = runtime.settings
    docs.configure(app, keys_required=bool(runtime.api_keys) or settings.umbraco_tokens)
    api = ProblemApi(app)
    docs.describe_security(api, settings.umbraco_sections if settings.umbraco_tokens else None)
    app.register_blueprint(docs.assets_blueprint())

    guard = bearer_guard(runtime.api_keys, runtime.ingest_keys, runtime.umbraco_tokens, RETRY_AFTER_SECONDS)
    for blueprint in (analytics.create_blueprint(runtime.database), audit_logs.create_blueprint(runtime.database)):
        blueprint.before_request(guard)
        blueprint.register_error_handler(OperationalError, storage_unavailable(runtime.metrics))
        blueprint.register_error_handler(DatabaseError, storage_failed(runtime.metrics))
        api.register_blueprint(blueprint)
    app.after_request(cors_headers(settings.cors_origins, f"{API_BASE}/"))


def storage_unavailable(metrics: Metrics | None) -> Callable[[OperationalError], Response]:
    def handle(error: OperationalError) -> Response:
        """ClickHouse cannot be reached: a retryable 503, not a 500."""
        if metrics is not None:
            metrics.storage_error("query", error)
        return problem(503, "Service Unavailable", "storage is unavailable; retry shortly", headers={"Retry-After": RETRY_AFTER_SECONDS})

    return handle


def storage_failed(metrics: Metrics | None) -> Callable[[DatabaseError], Response]:
    def handle(error: DatabaseError) -> Response:
        """Any other ClickHouse error: counted, logged, and a 500 like every unexpected error."""
        if metrics is not None:
            metrics.storage_error("query", error)
        log.exception("ClickHouse query failed")
        return from_http_exception(InternalServerError())

    return handle
