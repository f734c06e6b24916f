"""The audit log resource: raw operations, newest first, and one operation in detail."""

from __future__ import annotations

from flask_smorest import abort
from marshmallow import ValidationError

from app.api.problems import API_BASE, ApiBlueprint
from app.api.schemas import AUDIT_ID_PATTERN, AuditLogDetailSchema, AuditLogIdSchema, AuditLogPageSchema, AuditLogQuerySchema
from clickhouse import analytics
from clickhouse.analytics import AuditEntry, AuditFilter, AuditPage
from clickhouse.client import Database

TAG = "AuditLogs"
PREFIX = f"{API_BASE}/audit-logs"
ID_PARAMETER = {
    "in": "path",
    "name": "id",
    "description": "Trace id + span id of the operation, 48 hex characters.",
    "schema": {"type": "string", "pattern": AUDIT_ID_PATTERN},
}


def create_blueprint(database: Database) -> ApiBlueprint:
    blp = ApiBlueprint(TAG, __name__, url_prefix=PREFIX, description="Raw AI operations, one entry per model call.")

    @blp.route("", methods=["GET"])
    @blp.arguments(AuditLogQuerySchema, location="query")
    @blp.response(200, AuditLogPageSchema)
    @blp.common_errors
    @blp.doc(operationId="getAuditLogs")
    def list_audit_logs(wanted: AuditFilter) -> AuditPage:
        """Audit log entries

        Operations matching every given filter, newest first, `take` of them after `skip`;
        `total` counts all matches.
        """
        return analytics.audit_page(database, wanted)

    @blp.route("/<id>", methods=["GET"], parameters=[ID_PARAMETER])
    @blp.response(200, AuditLogDetailSchema)
    @blp.common_errors
    @blp.alt_response(400, response="BAD_REQUEST")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.doc(operationId="getAuditLogById")
    def get_audit_log(id: str) -> AuditEntry:  # noqa: A002 - the route's parameter name
        """Audit log entry

        One operation by id (trace id + span id, 48 hex characters), with its span attributes.
        """
        try:
            trace_id, span_id = AuditLogIdSchema().load({"id": id})
        except ValidationError as error:
            abort(400, messages={"path": error.messages})
        entry = analytics.audit_entry(database, trace_id, span_id)
        if entry is None:
            abort(404, detail=f"no audit log entry with id {id}")
        return entry

    return blp
