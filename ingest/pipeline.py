"""The core `export()` that both transports call: map, then commit through the batcher.

receive (ingest.http, ingest.grpc: transport, limits; ingest.codec: decoding)
  → map (ingest.mapping: which spans are model calls, validation, context
    keys; runs in the request's thread; a protobuf export in the usual shape
    is decoded and mapped in one compiled pass instead, ingest.fastmap)
  → commit (here: `_prepare` on the batcher's writer thread decides a group,
    with the duplicate check and context resolution, and `PreparedCommit.write`
    on its insert thread stores it, while the writer decides the next group;
    the store inserts the rows the compiled pass mapped, and has ClickHouse
    map the attributes of every other call into its row)

Nothing in this module knows about Flask, grpc or ClickHouse.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from ingest import codec
from ingest.batcher import Batcher, commit_now
from ingest.codec import SpanRecord
from ingest.config import IngestConfig
from ingest.context import MAX_TRACES, Candidate, ContextResolver, SpanFact
from ingest.fastmap import compiled_mapper
from ingest.mapping import Mapper, SpanRejected, resolve_context
from ingest.observe import NO_OBSERVER, IngestObserver
from ingest.store import Change, StagedCall, Store, StoredState

log = logging.getLogger(__name__)

# Partial-success messages list at most this many rejected spans.
MAX_LISTED_REJECTIONS = 5


@dataclass(frozen=True)
class ExportResult:
    accepted_operations: int = 0
    rejected_spans: int = 0
    error_message: str = ""


@dataclass
class MappedExport:
    candidates: list[Candidate] = field(default_factory=list)
    facts: list[SpanFact] = field(default_factory=list)


@dataclass
class DecodedExport:
    """An export body decoded and mapped: what `submit` stores."""

    span_count: int
    mapped: MappedExport
    rejections: list[str]


@dataclass
class PreparedCommit:
    """A group's decided rows, not stored yet, and how to take the decisions back."""

    store: Store
    stage: list[StagedCall]
    changes: list[Change]
    take_back: Callable[[], None]
    written: Callable[[], None]  # the write ended, stored or not

    def write(self) -> None:
        try:
            self.store.stage(self.stage)
            self.store.correct(self.changes)
        finally:
            self.written()

    def undo(self) -> None:
        self.take_back()
        self.written()


class IngestService:
    def __init__(self, config: IngestConfig, store: Store, retention_days: int = 0, observer: IngestObserver = NO_OBSERVER):
        self.config = config
        # The transports report their exports to it, the batcher its commits.
        self.observer = observer
        self.store = store
        self.mapper = Mapper(config, retention_days)
        self._compiled = compiled_mapper(self.mapper)
        # Memory holds at least two full groups: the one being written and the
        # one decided on top of it must not evict each other's traces.
        self.resolver = ContextResolver(
            config.context_keys, config.context_window_seconds, max_traces=max(MAX_TRACES, 2 * config.batch_max_spans)
        )
        self.batcher: Batcher[MappedExport] = Batcher(
            self._prepare,
            store.healthy,
            max_in_flight_spans=config.max_in_flight_spans,
            batch_max_spans=config.batch_max_spans,
            linger_seconds=config.batch_linger_ms / 1000,
            retry_after_seconds=config.retry_after_seconds,
            observer=observer,
        )
        self._no_context = config.context_keys.empty_context
        # One thread at a time decodes, maps or decides. All are pure Python and hold
        # the interpreter lock; the writer thread's group commit, the serial
        # step every export waits for, needs the lock too. With every request
        # thread mapping at once, the writer got a small share of it and each
        # commit took several times longer; waiting here costs nothing, since
        # an export waits for the writer anyway. The writer holds the slot
        # only while it decides in Python (see `_prepare`), and goes first.
        self._python_slot = WriterFirstSlot()
        # The calls of groups decided and not yet written (at most the one being
        # written while the next is decided), by (trace id, span id).
        self._unwritten: list[frozenset[tuple[str, str]]] = []
        self._unwritten_lock = threading.Lock()

    def start(self) -> None:
        self.batcher.start()

    def close(self, timeout: float = 30.0) -> bool:
        return self.batcher.close(timeout)

    def receive(self, body: bytes, media: str) -> DecodedExport:
        """Decode and map an export body, in the Python slot.

        A protobuf body takes the compiled pass (ingest.fastmap) unless it
        hands the body back, as it does for anything unusual.
        """
        with self._python_slot.mapper():
            if media == codec.PROTOBUF and self._compiled is not None:
                done = self._compiled.map(body)
                if done is not None:
                    facts, candidates, spans = done
                    return DecodedExport(spans, MappedExport(candidates, facts), [])
            records = codec.decode(body, media)
            mapped, rejections = self.map(records)
        return DecodedExport(len(records), mapped, rejections)

    def export(self, spans: list[SpanRecord]) -> ExportResult:
        """Store the AI operations among decoded `spans`; return once they are stored."""
        with self._python_slot.mapper():
            mapped, rejections = self.map(spans)
        return self.submit(DecodedExport(len(spans), mapped, rejections))

    def submit(self, decoded: DecodedExport) -> ExportResult:
        """Store a mapped export's operations; return once they are stored.

        Raises a RetryableError (503) when they could not be stored now.
        """
        mapped, rejections = decoded.mapped, decoded.rejections
        if mapped.candidates or any(fact.context or self.resolver.knows(fact.trace_id) for fact in mapped.facts):
            ticket = self.batcher.offer(mapped, max(len(mapped.candidates), 1))
            ticket.wait(self.config.export_timeout_seconds)
        elif mapped.facts:
            self.resolver.links.add(mapped.facts)  # nothing to store, but a link a later call may need
        return ExportResult(len(mapped.candidates), len(rejections), _rejection_message(rejections))

    def map(self, spans: list[SpanRecord]) -> tuple[MappedExport, list[str]]:
        return map_records(self.mapper, spans)

    # --- writer thread ----------------------------------------------------

    def _commit(self, exports: list[MappedExport]) -> None:
        """Decide and store one group at once (the batcher overlaps the two; see `_prepare`)."""
        commit_now(self._prepare(exports))

    def _prepare(self, exports: list[MappedExport]) -> PreparedCommit:
        """Decide a group's rows and remember them as stored; `write()` then stores them.

        The batcher prepares the next group while ClickHouse stores this one,
        so the decisions are remembered before the write, and the next group
        is decided on top of them: a call it repeats is a duplicate of
        something memory says is stored. When the write fails, the batcher
        undoes this group and the one prepared on top of it (`undo()`, newest
        first) and decides that one again.
        """
        # The writer decides in the Python slot (pure Python, on the serial
        # path every export waits for) but never holds it across a ClickHouse
        # call: while ClickHouse works, without the interpreter lock, request
        # threads decode and map, and a query that hangs does not stop them
        # from answering (503 once the in-flight limit is reached).
        candidates, facts = _unique_candidates(exports)
        # A call of the group being written is a copy of one that will be stored
        # before this group is (or this group is decided again): leave it out,
        # whether or not memory still holds it.
        with self._unwritten_lock:
            unwritten = frozenset().union(*self._unwritten)
        if unwritten:
            candidates = [c for c in candidates if c.key not in unwritten]
        stored = self.store.lookup(
            (c.call.record.start_ns, c.call.record.trace_id, c.call.record.span_id) for c in candidates
        )
        undo = self.resolver.checkpoint({c.call.record.trace_id for c in candidates} | {f.trace_id for f in facts})
        try:
            with self._python_slot.writer():
                direct, tracked, trace_facts = self._split(candidates, facts, stored)
                adopt_traces, start, end = self.resolver.traces_to_adopt(trace_facts, candidates)
                if not adopt_traces:  # the common case: one turn in the slot
                    plan = self.resolver.plan(trace_facts, tracked, stored, {}, self.mapper.context_values)
            if adopt_traces:
                adopted = self.store.in_traces(adopt_traces, start, end)
                with self._python_slot.writer():
                    plan = self.resolver.plan(trace_facts, tracked, stored, adopted, self.mapper.context_values, adopt_traces)
            self.resolver.apply(plan)
            self.resolver.remember_direct(direct)
        except BaseException:
            undo()
            raise
        changes = [
            Change(plan.remember[key].timestamp_ns, *key, desired.counted, desired.context)
            for key, desired in plan.changes.items()
        ]
        keys = frozenset(c.key for c in candidates)
        with self._unwritten_lock:
            self._unwritten.append(keys)

        def written() -> None:
            with self._unwritten_lock:
                self._unwritten = [entry for entry in self._unwritten if entry is not keys]

        return PreparedCommit(self.store, [staged for staged, _ in direct] + plan.stage, changes, undo, written)

    def _split(
        self, candidates: list[Candidate], facts: list[SpanFact], stored: Mapping[tuple[str, str], StoredState]
    ) -> tuple[list[tuple[StagedCall, Candidate]], list[Candidate], list[SpanFact]]:
        """Calls stored as they are, the calls the resolver decides, and the span facts it needs."""
        direct_traces = self._direct_traces(candidates, facts, stored)
        direct: list[tuple[StagedCall, Candidate]] = []
        tracked: list[Candidate] = []
        for candidate in candidates:
            record = candidate.call.record
            if record.trace_id not in direct_traces:
                tracked.append(candidate)
                continue
            state = stored.get(candidate.key)
            if state is not None and state.live is not None:
                continue  # already stored: a retry
            context = (
                resolve_context(self.config.context_keys, [candidate.own_context], candidate.resource_context)
                if candidate.own_context or candidate.resource_context
                else self._no_context
            )
            direct.append((StagedCall(candidate.call, (state.max_version if state else 0) + 1, context), candidate))

        # Every span of a trace with a call or a context span here counts: the spans
        # between a stored call and its ancestor may come in the ancestor's export.
        # Not a direct call's own context: its trace's spans here are its calls,
        # whose context is already applied; remembering the trace here as well
        # would hide the calls (kept compactly, apart) from a nested call that
        # comes later, and both would count.
        traces = {c.call.record.trace_id for c in tracked} | {f.trace_id for f in facts if f.context and f.trace_id not in direct_traces}
        trace_facts, plain = [], []
        for fact in facts:
            if fact.trace_id in traces or self.resolver.knows(fact.trace_id):
                trace_facts.append(fact)
            elif fact.trace_id not in direct_traces:  # direct calls are remembered apart
                plain.append(fact)
        if plain:
            self.resolver.links.add(plain)
        return direct, tracked, trace_facts

    def _direct_traces(
        self, candidates: list[Candidate], facts: list[SpanFact], stored: Mapping[tuple[str, str], StoredState]
    ) -> set[str]:
        """Traces whose calls count as they are, with their own and their resource's context.

        In a trace nobody remembers whose only spans in this group are its
        calls, that is so for a root call alone, and for calls side by side
        under an ancestor not seen yet (the common case: Umbraco.AI's request
        span ends, so is exported, after its calls): none is the root (the
        root would wrap the others) or another's parent, and nothing is known
        above them, not even a plain span's link (one may join two of them).
        The resolver would decide the same, at several times the cost; the
        calls are remembered compactly, apart, so that a nested call or an
        ancestor that comes later still finds them. Calls stored before take
        the resolver's path, except a lone root's retry.
        """
        calls_of: dict[str, list[Candidate]] = {}
        for candidate in candidates:
            calls_of.setdefault(candidate.call.record.trace_id, []).append(candidate)
        spans_per_trace = Counter(fact.trace_id for fact in facts)
        knows = self.resolver.knows
        direct, side_by_side = set(), set()
        for trace_id, calls in calls_of.items():
            if spans_per_trace[trace_id] != len(calls) or knows(trace_id):
                continue
            if len(calls) == 1 and not calls[0].call.record.parent_span_id:
                direct.add(trace_id)  # a root call alone in its trace: nothing can be above it
                continue
            span_ids = {c.call.record.span_id for c in calls}
            if all(
                c.call.record.parent_span_id and c.call.record.parent_span_id not in span_ids and c.key not in stored
                for c in calls
            ):
                side_by_side.add(trace_id)
        if side_by_side:
            side_by_side -= self.resolver.links.linked(side_by_side)
        return direct | side_by_side


def _unique_candidates(exports: list[MappedExport]) -> tuple[list[Candidate], list[SpanFact]]:
    """The group's calls, each once (the same span may come twice in one group), and all its span facts."""
    candidates: list[Candidate] = []
    seen: set[tuple[str, str]] = set()
    facts: list[SpanFact] = []
    for export in exports:
        facts.extend(export.facts)
        for candidate in export.candidates:
            if candidate.key not in seen:
                seen.add(candidate.key)
                candidates.append(candidate)
    return candidates, facts


class WriterFirstSlot:
    """One thread at a time: the request threads' decoding and mapping, or the writer's deciding.

    The writer goes first: once it asks, no request thread starts, so it waits
    for the one running at most. With a plain lock the request threads, each
    mapping one export (tens of ms), took it in turn while the writer waited:
    0.1-0.3 s of every group commit of about 1 s under the benchmark's load.
    There is one writer thread.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._busy = False
        self._writer_waiting = False

    @contextmanager
    def mapper(self) -> Iterator[None]:
        with self._changed:
            while self._busy or self._writer_waiting:
                self._changed.wait()
            self._busy = True
        try:
            yield
        finally:
            self._release()

    @contextmanager
    def writer(self) -> Iterator[None]:
        with self._changed:
            self._writer_waiting = True
            while self._busy:
                self._changed.wait()
            self._busy, self._writer_waiting = True, False
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        with self._changed:
            self._busy = False
            self._changed.notify_all()


def map_records(mapper: Mapper, spans: list[SpanRecord]) -> tuple[MappedExport, list[str]]:
    """The Python path of mapping (ingest.fastmap is the compiled one): facts, candidates, rejections."""
    mapped = MappedExport()
    facts = mapped.facts
    rejections: list[str] = []
    resource_contexts: dict[int, dict[str, str]] = {}
    oldest_ns = mapper.oldest_start_ns()
    for record in spans:
        context = mapper.context_values(record.attributes)
        facts.append(SpanFact(record.trace_id, record.span_id, record.parent_span_id, record.start_ns, record.end_ns, context or None))
        found = mapper.capability(record)
        if found is None or mapper.is_ignored(record):
            continue
        try:
            call = mapper.model_call(record, *found, oldest_ns=oldest_ns)
        except SpanRejected as rejection:
            rejections.append(str(rejection))
            continue
        resource_key = id(record.resource)
        if resource_key not in resource_contexts:
            resource_contexts[resource_key] = mapper.context_values(record.resource.attributes)
        mapped.candidates.append(Candidate(call, context, resource_contexts[resource_key], (record.trace_id, record.span_id)))
    return mapped, rejections


def _rejection_message(rejections: list[str]) -> str:
    if not rejections:
        return ""
    listed = "; ".join(rejections[:MAX_LISTED_REJECTIONS])
    more = len(rejections) - MAX_LISTED_REJECTIONS
    suffix = f"; and {more} more" if more > 0 else ""
    return f"{len(rejections)} AI span(s) rejected: {listed}{suffix}"
