"""Prometheus metrics: the ingest observer, HTTP request metrics, and `GET /metrics`.

Every metric is named `ai_usage_*` and listed in the README ("Operations:
metrics and logs"). Labels only ever take values from a fixed set (transport,
outcome, status code, Flask url rule, storage operation), never from a
request's raw path or its data, so the number of series stays bounded.

Under gunicorn (`ai-usage serve`) metrics run in prometheus_client's
multiprocess mode: each worker writes its values to files in
PROMETHEUS_MULTIPROC_DIR (see app/multiprocess.py) and a scrape of any worker
sums them all. This module must therefore be imported only once that
variable is set, which is why create_app imports it, not app/__init__.
"""

from __future__ import annotations

import os

from clickhouse_connect.driver.exceptions import OperationalError
from flask import Blueprint, Flask, Response, request
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    values,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from app.multiprocess import MULTIPROC_ENV
from ingest.errors import StorageRejected
from ingest.observe import GRPC, HTTP, ExportReport, Outcome

METRICS_PATH = "/metrics"

# Exports wait for their group commit (and at most AI_USAGE_EXPORT_TIMEOUT_SECONDS, 8 s).
EXPORT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
# Analytics targets are tens of milliseconds.
REQUEST_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0)
INSERT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_SPAN_BUCKETS = (1, 10, 100, 500, 1_000, 5_000, 10_000, 25_000, 50_000, 100_000)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "(unmatched)"


def storage_error_kind(error: BaseException | None) -> str:
    """unavailable: storage could not be reached; refused: it refused the data; error: anything else."""
    if error is None or isinstance(error, (OperationalError, OSError)):
        return "unavailable"
    if isinstance(error, StorageRejected):
        return "refused"
    return "error"


class Metrics:
    """The service's metrics; implements ingest.observe.IngestObserver."""

    def __init__(self, multiprocess_dir: str | None = None):
        self.multiprocess = multiprocess_dir is not None
        if self.multiprocess and values.ValueClass is values.MutexValue:
            # prometheus_client chose its value class when first imported,
            # before the variable was set: values would stay in this process.
            raise RuntimeError(f"prometheus_client was imported before {MULTIPROC_ENV} was set")
        # No `_created` series: multiprocess mode has none, so both modes expose the same names.
        disable_created_metrics()
        # A registry per app, not the global one: several apps in one process
        # (the tests) each count their own.
        self.registry = CollectorRegistry(auto_describe=True)
        if self.multiprocess:
            # Scrapes read every worker's files; the metrics below still
            # register here only so that names are checked for clashes.
            self.scrape_registry = CollectorRegistry()
            MultiProcessCollector(self.scrape_registry, path=multiprocess_dir)
        else:
            self.scrape_registry = self.registry
        registry = self.registry

        self.spans_received = Counter(
            "ai_usage_spans_received", "Spans in export requests that decoded (every span, model call or not).",
            ["transport"], registry=registry)
        self.spans_accepted = Counter(
            "ai_usage_spans_accepted",
            "Spans acknowledged to the client: exports answered with success or partial success, less the spans rejected in them.",
            ["transport"], registry=registry)
        self.spans_rejected = Counter(
            "ai_usage_spans_rejected",
            "Spans not acknowledged, by reason: invalid (rejected in a partial success), retryable (export answered 503 / "
            "UNAVAILABLE), refused (export refused permanently after decoding), error (unexpected failure).",
            ["transport", "reason"], registry=registry)
        self.operations_accepted = Counter(
            "ai_usage_operations_accepted",
            "Model-call spans acknowledged to the client (re-sent ones included; rows_written counts only new ones).",
            ["transport"], registry=registry)
        self.export_responses = Counter(
            "ai_usage_export_responses", "Export requests answered, by HTTP status code or gRPC status name.",
            ["transport", "status"], registry=registry)
        self.export_duration = Histogram(
            "ai_usage_export_duration_seconds", "Time to answer an export request, by outcome.",
            ["transport", "outcome"], buckets=EXPORT_BUCKETS, registry=registry)
        self.rows_written_counter = Counter(
            "ai_usage_rows_written", "New operations inserted into ClickHouse (one row per model call).", registry=registry)
        self.operations_corrected_counter = Counter(
            "ai_usage_operations_corrected",
            "Stored operations rewritten with a new state (context that arrived later, a nested call no longer counted).",
            registry=registry)
        self.insert_batches = Counter(
            "ai_usage_insert_batches", "Group commits of the ingest writer, by outcome (ok, refused, failed).",
            ["outcome"], registry=registry)
        self.insert_batch_spans = Histogram(
            "ai_usage_insert_batch_spans", "Model-call spans per successful group commit.",
            buckets=BATCH_SPAN_BUCKETS, registry=registry)
        self.insert_duration = Histogram(
            "ai_usage_insert_duration_seconds", "Time a successful group commit took (lookups, inserts, corrections).",
            buckets=INSERT_BUCKETS, registry=registry)
        self.clickhouse_errors = Counter(
            "ai_usage_clickhouse_errors",
            "Failed ClickHouse calls, by operation (stage, correct, lookup, in_traces, probe, query) and kind "
            "(unavailable, refused, error).",
            ["operation", "kind"], registry=registry)
        self.request_duration = Histogram(
            "ai_usage_http_request_duration_seconds",
            "Time to answer an HTTP request, by route (the URL rule, never the raw path) and method.",
            ["route", "method"], buckets=REQUEST_BUCKETS, registry=registry)
        self.http_responses = Counter(
            "ai_usage_http_responses", "HTTP responses, by route, method and status code.",
            ["route", "method", "status"], registry=registry)

        # Series that exist from the start, so rates and alerts see a 0, not nothing.
        for transport in (HTTP, GRPC):
            for counter in (self.spans_received, self.spans_accepted, self.operations_accepted):
                counter.labels(transport)
            for reason in ("invalid", "retryable", "refused", "error"):
                self.spans_rejected.labels(transport, reason)
        for outcome in ("ok", "refused", "failed"):
            self.insert_batches.labels(outcome)
        self._rejected_reason = {
            Outcome.RETRYABLE: "retryable",
            Outcome.PERMANENT: "refused",
            Outcome.ERROR: "error",
        }

    @classmethod
    def from_environment(cls) -> Metrics:
        """Multiprocess mode when PROMETHEUS_MULTIPROC_DIR is set (gunicorn), else this process alone."""
        return cls(os.environ.get(MULTIPROC_ENV) or None)

    # --- ingest.observe.IngestObserver: once per export or commit -----------

    def export_finished(self, report: ExportReport) -> None:
        transport = report.transport
        self.export_responses.labels(transport, report.status).inc()
        self.export_duration.labels(transport, report.outcome.value).observe(report.seconds)
        if not report.spans:
            return
        self.spans_received.labels(transport).inc(report.spans)
        if report.outcome in (Outcome.SUCCESS, Outcome.PARTIAL):
            self.spans_accepted.labels(transport).inc(report.spans - report.rejected)
            if report.rejected:
                self.spans_rejected.labels(transport, "invalid").inc(report.rejected)
            if report.operations:
                self.operations_accepted.labels(transport).inc(report.operations)
        else:
            self.spans_rejected.labels(transport, self._rejected_reason[report.outcome]).inc(report.spans)

    def commit_finished(self, exports: int, spans: int, seconds: float, error: BaseException | None) -> None:
        if error is None:
            self.insert_batches.labels("ok").inc()
            self.insert_batch_spans.observe(spans)
            self.insert_duration.observe(seconds)
        elif isinstance(error, StorageRejected):
            self.insert_batches.labels("refused").inc()
        else:
            self.insert_batches.labels("failed").inc()

    def rows_written(self, rows: int) -> None:
        self.rows_written_counter.inc(rows)

    def operations_corrected(self, operations: int) -> None:
        self.operations_corrected_counter.inc(operations)

    def storage_error(self, operation: str, error: BaseException | None) -> None:
        self.clickhouse_errors.labels(operation, storage_error_kind(error)).inc()

    # --- HTTP ---------------------------------------------------------------

    def request_finished(self, rule: str | None, method: str, status: int, seconds: float) -> None:
        route = rule if rule is not None else UNMATCHED_ROUTE
        method = method if method in _METHODS else "OTHER"
        self.request_duration.labels(route, method).observe(seconds)
        self.http_responses.labels(route, method, str(status)).inc()

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The metrics in the format the scraper asks for (Prometheus text 0.0.4 by default, or OpenMetrics)."""
        encode, content_type = choose_encoder(accept or "")
        return encode(self.scrape_registry), content_type


def init_app(app: Flask, metrics: Metrics) -> None:
    """`GET /metrics`, open like the health checks (see the README for why and how to fence it)."""
    blueprint = Blueprint("metrics", __name__)

    @blueprint.get(METRICS_PATH)
    def scrape() -> Response:
        body, content_type = metrics.exposition(request.headers.get("Accept"))
        return Response(body, content_type=content_type)

    app.register_blueprint(blueprint)
