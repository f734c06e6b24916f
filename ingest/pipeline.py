"""The core `export()` that both transports call: map, then commit through the batcher.

receive (ingest.http, ingest.grpc: transport, limits; ingest.codec: decoding)
  → map (ingest.mapping: which spans are model calls, validation, context
    keys; runs in the request's thread; a protobuf export in the usual shape
    is decoded and mapped in one compiled pass instead, ingest.fastmap)
  → commit (here: `_prepare` on the batcher's writer thread decides a group,
    with the duplicate check and context resolution, its per-call steps
    compiled where built (ingest/fastdecide.py), and `PreparedCommit.write`
    on its insert thread stores it, while the writer decides the next group;
    the store inserts the rows the compiled pass mapped, and has ClickHouse
    map the attributes of every other call into its row)

Nothing in this module knows about Flask, grpc or ClickHouse.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple

from ingest import codec, fastdecide
from ingest.batcher import Batcher, commit_now
from ingest.codec import SpanRecord
from ingest.config import IngestConfig
from ingest.context import MAX_TRACES, Candidate, ContextResolver, SpanFact
from ingest.fastmap import compiled_mapper
from ingest.mapping import Mapper, SpanRejected
from ingest.observe import NO_OBSERVER, IngestObserver
from ingest.store import Change, LookupKeys, StagedCall, Store

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
        # Where the writer's duplicate look-ups run (see `_prepare`).
        self._lookups = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-lookup")

    def start(self) -> None:
        self.batcher.start()

    def close(self, timeout: float = 30.0) -> bool:
        drained = self.batcher.close(timeout)
        self._lookups.shutdown(wait=False)
        return drained

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
        # A call of the group being written is a copy of one that will be stored
        # before this group is (or this group is decided again): leave it out,
        # whether or not memory still holds it.
        with self._unwritten_lock:
            unwritten = frozenset().union(*self._unwritten)
        group = gather(exports, unwritten)
        candidates, facts = group.candidates, group.facts
        # The duplicate look-up runs on its own thread while the writer sorts the
        # calls as if none were stored, which is so for all but retries: the
        # query's time and the sorting's overlap instead of adding up on the
        # serial path. When the look-up finds any, the calls are sorted again.
        looked_up = self._lookups.submit(self.store.lookup, group.lookup_keys)
        undo = self.resolver.checkpoint(group.trace_ids)
        try:
            with self._python_slot.writer():
                split = self.resolver.split(candidates, facts, {})
            stored = looked_up.result()
            with self._python_slot.writer():
                if stored:
                    split = self.resolver.split(candidates, facts, stored)
                if split.plain:
                    self.resolver.links.add(split.plain)
                adopt_traces, start, end = self.resolver.traces_to_adopt(split.trace_facts, group.keys)
                if not adopt_traces:  # the common case: one turn in the slot
                    plan = self.resolver.plan(split.trace_facts, split.tracked, stored, {}, self.mapper.context_values)
            if adopt_traces:
                adopted = self.store.in_traces(adopt_traces, start, end)
                with self._python_slot.writer():
                    plan = self.resolver.plan(
                        split.trace_facts, split.tracked, stored, adopted, self.mapper.context_values, adopt_traces
                    )
            self.resolver.apply(plan)
            self.resolver.remember_direct(split.remembered)
        except BaseException:
            undo()
            raise
        changes = [
            Change(plan.remember[key].timestamp_ns, *key, desired.counted, desired.context)
            for key, desired in plan.changes.items()
        ]
        keys = group.keys
        with self._unwritten_lock:
            self._unwritten.append(keys)

        def written() -> None:
            with self._unwritten_lock:
                self._unwritten = [entry for entry in self._unwritten if entry is not keys]

        return PreparedCommit(self.store, split.direct + plan.stage, changes, undo, written)


class Gathered(NamedTuple):
    """A group's exports taken together (`gather`)."""

    # Its calls, each once (the same span may come twice in a group), less those
    # of the group being written; and all its span facts.
    candidates: list[Candidate]
    facts: list[SpanFact]
    keys: frozenset[tuple[str, str]]  # the calls' (trace id, span id)
    lookup_keys: LookupKeys  # the calls' keys for the duplicate look-up
    trace_ids: set[str]  # the traces of its calls and facts


def gather(exports: list[MappedExport], unwritten: AbstractSet[tuple[str, str]]) -> Gathered:
    """A group's calls and facts, and the keys the writer needs of them (compiled where built)."""
    if fastdecide.gather is not None:
        return Gathered(*fastdecide.gather(exports, unwritten, LookupKeys))
    return _gather(exports, unwritten)


def _gather(exports: list[MappedExport], unwritten: AbstractSet[tuple[str, str]]) -> Gathered:
    """`gather` in Python (ingest/_decide.c `gather` is the same in C)."""
    candidates: list[Candidate] = []
    seen: set[tuple[str, str]] = set()
    facts: list[SpanFact] = []
    for export in exports:
        facts.extend(export.facts)
        for candidate in export.candidates:
            if candidate.key not in seen:
                seen.add(candidate.key)
                if candidate.key not in unwritten:
                    candidates.append(candidate)
    lookup_keys = LookupKeys(
        [candidate.call.record.start_ns for candidate in candidates],
        [candidate.key[0] for candidate in candidates],
        [candidate.key[1] for candidate in candidates],
    )
    trace_ids = set(lookup_keys.trace_ids)
    trace_ids.update(fact.trace_id for fact in facts)
    return Gathered(candidates, facts, frozenset(c.key for c in candidates), lookup_keys, trace_ids)


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
