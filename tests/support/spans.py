"""Plain span records for unit tests of mapping and context resolution."""

from __future__ import annotations

import itertools

from ingest.codec import Resource, Scope, SpanRecord

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
START = 1_735_689_600_000_000_000
_ids = itertools.count(1)


def span_id() -> str:
    return f"{next(_ids):016x}"


def record(
    attributes: dict | None = None,
    *,
    trace_id: str = TRACE,
    span: str | None = None,
    parent: str = "",
    name: str = "span",
    start: int = START,
    duration: int = 1_000_000,
    status_code: int = 0,
    status_message: str = "",
    exception: tuple[str, str] | None = None,
    resource: dict | None = None,
    scope: str = "tests",
) -> SpanRecord:
    return SpanRecord(
        trace_id,
        span or span_id(),
        parent,
        name,
        start,
        start + duration,
        status_code,
        status_message,
        dict(attributes or {}),
        exception,
        Resource(dict(resource or {"service.name": "svc"})),
        Scope(scope, "1.0"),
    )
