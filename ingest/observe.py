"""What the ingest pipeline tells an observer (metrics): exports, group commits, storage calls.

The transports report each export once, the batcher each group commit, and
`ObservedStore` each storage call: per export or per commit, never per span,
so observing costs nothing measurable on the hot path. Nothing here knows
about Flask, grpc, ClickHouse or Prometheus; app/metrics.py implements the
observer, and `NO_OBSERVER` is the default that does nothing.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ingest.errors import IngestError
from ingest.store import Change, LookupKeys, StagedCall, Store, StoredState

HTTP = "http"
GRPC = "grpc"


class Outcome(enum.StrEnum):
    """How an export ended, in the terms of the OTLP specification and ingest.errors."""

    SUCCESS = "success"  # every span accepted
    PARTIAL = "partial_success"  # stored, but some spans rejected individually
    RETRYABLE = "retryable"  # 503 / UNAVAILABLE: the client sends it again
    PERMANENT = "permanent"  # 4xx / INVALID_ARGUMENT...: the same request would fail again
    ERROR = "error"  # an unexpected failure inside the service (500 / UNKNOWN)


@dataclass(frozen=True, slots=True)
class ExportReport:
    """One export request as its transport answered it."""

    transport: str
    status: str  # HTTP status code, or gRPC status code name
    outcome: Outcome
    seconds: float
    spans: int = 0  # spans decoded from the request (0 when it never decoded)
    operations: int = 0  # model-call spans acknowledged (success or partial success)
    rejected: int = 0  # spans rejected individually (partial success)

    @classmethod
    def answered(cls, transport: str, status: str, started: float, spans: int, operations: int, rejected: int) -> ExportReport:
        outcome = Outcome.PARTIAL if rejected else Outcome.SUCCESS
        return cls(transport, status, outcome, time.perf_counter() - started, spans, operations, rejected)

    @classmethod
    def failed(cls, transport: str, status: str, started: float, spans: int, error: BaseException) -> ExportReport:
        if isinstance(error, IngestError):
            outcome = Outcome.RETRYABLE if error.retryable else Outcome.PERMANENT
        elif isinstance(code := getattr(error, "code", None), int) and code < 500:
            outcome = Outcome.PERMANENT  # an HTTP error of the client's making (it hung up mid-body)
        else:
            outcome = Outcome.ERROR
        return cls(transport, status, outcome, time.perf_counter() - started, spans)


class IngestObserver(Protocol):
    def export_finished(self, report: ExportReport) -> None:
        """An export was answered (called by the transport, once per request)."""

    def commit_finished(self, exports: int, spans: int, seconds: float, error: BaseException | None) -> None:
        """The writer tried to commit a group of `exports` carrying `spans` model-call spans."""

    def rows_written(self, rows: int) -> None:
        """New operations were inserted."""

    def operations_corrected(self, operations: int) -> None:
        """Stored operations got a new state (context arrived later, a nested call uncounted)."""

    def storage_error(self, operation: str, error: BaseException | None) -> None:
        """A storage call failed; `error` is None for a failed health probe."""


class NoObserver:
    """The default: observe nothing."""

    def export_finished(self, report: ExportReport) -> None:
        pass

    def commit_finished(self, exports: int, spans: int, seconds: float, error: BaseException | None) -> None:
        pass

    def rows_written(self, rows: int) -> None:
        pass

    def operations_corrected(self, operations: int) -> None:
        pass

    def storage_error(self, operation: str, error: BaseException | None) -> None:
        pass


NO_OBSERVER: IngestObserver = NoObserver()


class ObservedStore:
    """A Store that reports rows written, corrections and failed calls to an observer.

    Wrapping the store, rather than instrumenting the pipeline, keeps the
    counting out of the commit logic: a row counts once its insert returned.
    """

    def __init__(self, store: Store, observer: IngestObserver):
        self._store = store
        self._observer = observer

    def stage(self, calls: Sequence[StagedCall]) -> None:
        self._call("stage", self._store.stage, calls)
        if calls:
            self._observer.rows_written(len(calls))

    def correct(self, changes: Sequence[Change]) -> None:
        self._call("correct", self._store.correct, changes)
        if changes:
            self._observer.operations_corrected(len(changes))

    def lookup(self, keys: LookupKeys) -> dict[tuple[str, str], StoredState]:
        return self._call("lookup", self._store.lookup, keys)

    def in_traces(self, trace_ids: Iterable[str], start_ns: int, end_ns: int) -> dict[tuple[str, str], StoredState]:
        return self._call("in_traces", self._store.in_traces, trace_ids, start_ns, end_ns)

    def healthy(self) -> bool:
        healthy = self._store.healthy()
        if not healthy:
            self._observer.storage_error("probe", None)
        return healthy

    def __getattr__(self, name: str) -> Any:
        # Anything else the store offers passes through, unobserved.
        return getattr(self._store, name)

    def _call(self, operation: str, method: Any, *args: Any) -> Any:
        try:
            return method(*args)
        except Exception as error:
            self._observer.storage_error(operation, error)
            raise
