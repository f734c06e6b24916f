"""The analytics API: flask-smorest blueprints under /umbraco/ai/management/api/v1.

`init_app` wires it: the OpenAPI document and Swagger UI, one blueprint per
resource (analytics, audit logs), bearer keys on both, CORS for the origins in
AI_USAGE_CORS_ORIGINS, and the problem error shape for everything flask-smorest
answers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clickhouse_connect.driver.exceptions import OperationalError
from flask import Flask, Response

from app.api import analytics, audit_logs, docs
from app.api.access import bearer_guard, cors_headers
from app.api.problems import API_BASE, ProblemApi
from app.errors import problem

if TYPE_CHECKING:
    from app import Runtime

RETRY_AFTER_SECONDS = "2"


def init_app(app: Flask, runtime: Runtime) -> None:
    settings = runtime.settings
    docs.configure(app, keys_required=bool(runtime.api_keys))
    api = ProblemApi(app)
    docs.describe_security(api)
    app.register_blueprint(docs.assets_blueprint())

    guard = bearer_guard(runtime.api_keys, runtime.ingest_keys)
    for blueprint in (analytics.create_blueprint(runtime.database), audit_logs.create_blueprint(runtime.database)):
        blueprint.before_request(guard)
        blueprint.register_error_handler(OperationalError, storage_unavailable)
        api.register_blueprint(blueprint)
    app.after_request(cors_headers(settings.cors_origins, f"{API_BASE}/"))


def storage_unavailable(error: OperationalError) -> Response:
    """ClickHouse cannot be reached: a retryable 503, not a 500."""
    return problem(503, "Service Unavailable", "storage is unavailable; retry shortly", headers={"Retry-After": RETRY_AFTER_SECONDS})
