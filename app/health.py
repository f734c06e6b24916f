"""Liveness and readiness, open without keys so orchestrators can probe them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, Flask, jsonify

from clickhouse.migrate import mapping_current, pending

if TYPE_CHECKING:
    from app import Runtime


def init_app(app: Flask, runtime: Runtime) -> None:
    blueprint = Blueprint("health", __name__)

    @blueprint.get("/health/live")
    def live():
        return jsonify(status="ok")

    @blueprint.get("/health/ready")
    def ready():
        checks = {"clickhouse": runtime.database.ping()}
        try:
            client = runtime.database.client()
            checks["migrations"] = checks["clickhouse"] and not pending(client) and mapping_current(client)
        except Exception:  # noqa: BLE001 - unreachable storage is "not ready", not a 500
            checks["migrations"] = False
        if runtime.ingest is not None:
            checks["writer"] = not runtime.ingest.batcher.storage_down
        ok = all(checks.values())
        return jsonify(status="ready" if ok else "unavailable", checks=checks), 200 if ok else 503

    app.register_blueprint(blueprint)
