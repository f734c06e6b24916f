"""The core `export()` that both transports call: map, then commit through the batcher.

receive (ingest.http, ingest.grpc: transport, limits, decoding)
  → map (ingest.mapping: span → operation row; runs in the request's thread)
  → commit (here, on the batcher's single writer thread: duplicate check,
    context resolution, one insert for the whole group)

Nothing in this module knows about Flask or grpc.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ingest.batcher import Batcher
from ingest.codec import SpanRecord
from ingest.config import IngestConfig
from ingest.context import Candidate, ContextResolver, SpanFact, reconcile
from ingest.mapping import Mapper, SpanRejected
from ingest.operation import Operation

log = logging.getLogger(__name__)

# Partial-success messages list at most this many rejected spans.
MAX_LISTED_REJECTIONS = 5


class Store(Protocol):
    """The write stage: clickhouse.operations.OperationStore in production."""

    def insert(self, rows: Sequence[Operation]) -> None: ...
    def lookup(self, keys: list[tuple[int, str, str]]) -> dict: ...
    def in_traces(self, trace_ids: set[str], start_ns: int, end_ns: int) -> dict: ...
    def healthy(self) -> bool: ...


@dataclass(frozen=True)
class ExportResult:
    accepted_operations: int = 0
    rejected_spans: int = 0
    error_message: str = ""


@dataclass
class MappedExport:
    candidates: list[Candidate] = field(default_factory=list)
    facts: list[SpanFact] = field(default_factory=list)


class IngestService:
    def __init__(self, config: IngestConfig, store: Store, retention_days: int = 0):
        self.config = config
        self.store = store
        self.mapper = Mapper(config, retention_days)
        self.resolver = ContextResolver(config.context_keys, config.context_window_seconds)
        self.batcher: Batcher[MappedExport] = Batcher(
            self._commit,
            store.healthy,
            max_in_flight_spans=config.max_in_flight_spans,
            batch_max_spans=config.batch_max_spans,
            linger_seconds=config.batch_linger_ms / 1000,
            retry_after_seconds=config.retry_after_seconds,
        )
        self.stats = {"spans_received": 0, "operations_accepted": 0, "spans_rejected": 0}

    def start(self) -> None:
        self.batcher.start()

    def close(self, timeout: float = 30.0) -> bool:
        return self.batcher.close(timeout)

    def export(self, spans: list[SpanRecord]) -> ExportResult:
        """Store the AI operations among `spans`; return once they are stored.

        Raises a RetryableError (503) when they could not be stored now.
        """
        mapped, rejections = self.map(spans)
        self.stats["spans_received"] += len(spans)
        self.stats["spans_rejected"] += len(rejections)
        if mapped.candidates or any(fact.context or self.resolver.knows(fact.trace_id) for fact in mapped.facts):
            ticket = self.batcher.offer(mapped, max(len(mapped.candidates), 1))
            ticket.wait(self.config.export_timeout_seconds)
        self.stats["operations_accepted"] += len(mapped.candidates)
        return ExportResult(len(mapped.candidates), len(rejections), _rejection_message(rejections))

    def map(self, spans: list[SpanRecord]) -> tuple[MappedExport, list[str]]:
        mapper = self.mapper
        mapped = MappedExport()
        rejections: list[str] = []
        resource_contexts: dict[int, dict[str, str]] = {}
        oldest_ns = mapper.oldest_start_ns()
        for record in spans:
            context = mapper.context_values(record.attributes)
            mapped.facts.append(
                SpanFact(record.trace_id, record.span_id, record.parent_span_id, record.start_ns, record.end_ns, context or None)
            )
            found = mapper.capability(record)
            if found is None or mapper.is_ignored(record):
                continue
            try:
                row = mapper.map(record, *found, oldest_ns=oldest_ns)
            except SpanRejected as rejection:
                rejections.append(str(rejection))
                continue
            resource_key = id(record.resource)
            if resource_key not in resource_contexts:
                resource_contexts[resource_key] = mapper.context_values(record.resource.attributes)
            mapped.candidates.append(Candidate(row, context, resource_contexts[resource_key]))
        return mapped, rejections

    # --- writer thread ----------------------------------------------------

    def _commit(self, exports: list[MappedExport]) -> None:
        candidates: list[Candidate] = []
        seen: set[tuple[str, str]] = set()
        facts: list[SpanFact] = []
        for export in exports:
            facts.extend(export.facts)
            for candidate in export.candidates:
                if candidate.row.key not in seen:  # the same span twice in this group
                    seen.add(candidate.row.key)
                    candidates.append(candidate)

        stored = self.store.lookup([(c.row.timestamp_ns, c.row.trace_id, c.row.span_id) for c in candidates])
        adopt_traces, start, end = self.resolver.traces_to_adopt(facts, candidates)
        adopted = []
        if adopt_traces:
            adopted = [s.current for s in self.store.in_traces(adopt_traces, start, end).values() if s.current]

        plan = self.resolver.plan(facts, candidates, stored, adopted, self.mapper.context_values)
        live: dict[tuple[str, str], Operation | None] = {}
        if plan.changes:
            keys = [(plan.remember[key].timestamp_ns, *key) for key in plan.changes]
            live = {key: state.current for key, state in self.store.lookup(keys).items()}
        rows, outcome = reconcile(plan, live)
        self.store.insert(rows)
        self.resolver.apply(plan, outcome)


def _rejection_message(rejections: list[str]) -> str:
    if not rejections:
        return ""
    listed = "; ".join(rejections[:MAX_LISTED_REJECTIONS])
    more = len(rejections) - MAX_LISTED_REJECTIONS
    suffix = f"; and {more} more" if more > 0 else ""
    return f"{len(rejections)} AI span(s) rejected: {listed}{suffix}"
