"""The usage analytics resource: summary, time series and one breakdown per registered dimension.

Every route exists twice: the canonical path Umbraco.AI serves and the seed
README's alias, one handler behind both, both in the OpenAPI document.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response
from marshmallow import Schema

from app.api.dimensions import DIMENSIONS, Dimension
from app.api.problems import API_BASE, ApiBlueprint
from app.api.schemas import BreakdownItemSchema, SummarySchema, TimeSeriesPointSchema, UsageQuery, UsageQuerySchema
from clickhouse import analytics
from clickhouse.analytics import SeriesPoint, Summary
from clickhouse.client import Database

TAG = "Analytics"
PREFIX = f"{API_BASE}/analytics"


def create_blueprint(database: Database) -> ApiBlueprint:
    blp = ApiBlueprint(TAG, __name__, url_prefix=PREFIX, description="Usage of AI models over a period: Umbraco.AI's analytics API.")

    def usage_summary(query: UsageQuery) -> Summary:
        return analytics.summary(database, query.period)

    def usage_time_series(query: UsageQuery) -> list[SeriesPoint]:
        return analytics.time_series(database, query.period, query.granularity)

    add_routes(
        blp,
        usage_summary,
        SummarySchema(),
        paths=("usage-summary", "summary"),
        operation_id="getUsageSummary",
        summary="Usage summary",
        description="Totals of the operations whose start time is in [from, to).",
    )
    add_routes(
        blp,
        usage_time_series,
        TimeSeriesPointSchema(many=True),
        paths=("usage-time-series", "timeseries"),
        operation_id="getUsageTimeSeries",
        summary="Usage time series",
        description=(
            "Operations in [from, to) grouped into UTC buckets of `granularity`, ascending. "
            "A bucket is stamped with its start even when `from` lies inside it; empty buckets are omitted."
        ),
    )
    for dimension in DIMENSIONS:
        add_routes(
            blp,
            breakdown_handler(database, dimension),
            BreakdownItemSchema(many=True),
            paths=(dimension.path, dimension.alias_path),
            operation_id=dimension.operation_id,
            summary=f"Usage by {dimension.rollup}",
            description=(
                f"{dimension.description} Operations in [from, to); sorted by requestCount descending, then "
                f"dimension. Operations without a {dimension.rollup} are counted as `{dimension.unknown_label}`."
            ),
        )
    return blp


def breakdown_handler(database: Database, dimension: Dimension) -> Callable[[UsageQuery], Response]:
    def usage_breakdown(query: UsageQuery) -> Response:
        # The body comes from ClickHouse as JSON already (see analytics.breakdown);
        # BreakdownItemSchema documents it.
        return Response(analytics.breakdown(database, dimension, query.period), mimetype="application/json")

    return usage_breakdown


def add_routes(
    blp: ApiBlueprint,
    handler: Callable[..., Any],
    schema: Schema,
    *,
    paths: tuple[str, str],
    operation_id: str,
    summary: str,
    description: str,
    arguments: type[Schema] = UsageQuerySchema,
) -> None:
    """Registers `handler` at its canonical path and its alias, each with its own operation id."""
    view = blp.common_errors(blp.arguments(arguments, location="query")(blp.response(200, schema)(handler)))
    canonical, alias = paths
    routes = (
        (canonical, operation_id, {"summary": summary, "description": description}),
        (
            alias,
            f"{operation_id}Alias",
            {
                "summary": f"{summary} (alias)",
                "description": f"Alias of `{canonical}`, same handler. {description}",
                "x-alias-of": operation_id,
            },
        ),
    )
    for path, endpoint, doc in routes:
        blp.add_url_rule(f"/{path}", endpoint=endpoint, view_func=blp.doc(operationId=endpoint, **doc)(view), methods=["GET"])
