"""Context from ancestor spans, and one count per nested model call.

Umbraco.AI tags an *ancestor* of the `chat {model}` span (the request span)
with profile, user, feature and entity, and that ancestor ends, so is
exported, after the call. Operations are therefore stored as soon as they
arrive, with the context known at that moment, and corrected when a later
span completes the picture. A correction is a cancel row (sign -1) plus the
new state (next version), so every aggregate stays exact at every moment.

The same machinery keeps one count per call when two instrumentations wrap it:
of two nested model-call spans, the leaf is counted (the outer one only when
it has tokens and the leaf has none).

Memory is bounded: a trace is remembered for `window_seconds` after it was
last touched, and at most `max_traces` traces are kept (oldest dropped first).
An ancestor that arrives for a trace no longer remembered (after a restart, or
at another ingest process) is still applied: the committer reads the trace's
stored operations back (see `adopt`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from ingest.config import ContextKeys
from ingest.mapping import resolve_context
from ingest.operation import CONTEXT_FIELDS, Operation

# Longest parent chain followed (a hostile trace could link spans in a loop).
MAX_DEPTH = 64


class SpanFact(NamedTuple):
    """What the resolver keeps of any span: its place in the trace and its context tags."""

    trace_id: str
    span_id: str
    parent_span_id: str
    start_ns: int
    end_ns: int
    context: Mapping[str, str] | None


@dataclass(slots=True)
class Candidate:
    """A newly mapped operation, with the context sources it was mapped from."""

    row: Operation
    own_context: Mapping[str, str]
    resource_context: Mapping[str, str]


@dataclass(slots=True)
class OpInfo:
    """What the resolver remembers of one operation of a trace."""

    timestamp_ns: int
    parent: str
    has_tokens: bool
    own_context: Mapping[str, str]
    resource_context: Mapping[str, str]
    # Context already stored that no span in memory explains (an operation read
    # back from storage): used where the resolution finds nothing.
    fallback: tuple[str, ...] | None = None
    # Stored state: the live version's context, or counted=False when no live row.
    version: int = 0
    counted: bool = False
    context: tuple[str, ...] = ()
    # The row to store if a not-yet-stored operation becomes counted.
    unstored: Operation | None = None


@dataclass(slots=True)
class TraceState:
    parents: dict[str, str] = field(default_factory=dict)
    contexts: dict[str, Mapping[str, str]] = field(default_factory=dict)
    ops: dict[str, OpInfo] = field(default_factory=dict)
    root: str = ""


class Desired(NamedTuple):
    counted: bool
    context: tuple[str, ...]


@dataclass
class Plan:
    """What one commit should write. Nothing in the resolver changes until `apply`."""

    new_rows: list[Operation] = field(default_factory=list)
    # Stored operations whose state should change: key → wanted state.
    changes: dict[tuple[str, str], Desired] = field(default_factory=dict)
    # Everything the resolver should remember once the rows are stored.
    remember: dict[tuple[str, str], OpInfo] = field(default_factory=dict)


class ContextResolver:
    def __init__(
        self,
        keys: ContextKeys,
        window_seconds: float,
        max_traces: int = 200_000,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.keys = keys
        self.window = window_seconds
        self.max_traces = max_traces
        self.clock = clock
        self._traces: OrderedDict[str, TraceState] = OrderedDict()
        self._seen_at: dict[str, float] = {}

    def knows(self, trace_id: str) -> bool:
        return trace_id in self._traces

    def __len__(self) -> int:
        return len(self._traces)

    def traces_to_adopt(self, facts: Iterable[SpanFact], candidates: Iterable[Candidate]) -> tuple[set[str], int, int]:
        """Traces whose context spans arrive with none of their operations in memory.

        Returns the trace ids and the time range their operations must lie in
        (an ancestor starts before and ends after its descendants).
        """
        with_ops = {c.row.trace_id for c in candidates}
        traces: set[str] = set()
        start, end = 2**63 - 1, 0
        for fact in facts:
            if fact.context and fact.trace_id not in with_ops:
                state = self._traces.get(fact.trace_id)
                if state is None or not state.ops:
                    traces.add(fact.trace_id)
                    start, end = min(start, fact.start_ns), max(end, fact.end_ns)
        return traces, start, end

    def plan(
        self,
        facts: Iterable[SpanFact],
        candidates: list[Candidate],
        stored: Mapping[tuple[str, str], object],
        adopted: Iterable[Operation] = (),
        own_context_of: Callable[[Mapping[str, str]], Mapping[str, str]] | None = None,
    ) -> Plan:
        """Decide the rows of one commit.

        `stored` maps candidate keys to their `StoredState` (duplicate check);
        `adopted` are live rows read back for traces not in memory, and
        `own_context_of` recovers their own context from their attributes.
        """
        self._expire()
        plan = Plan()
        touched = self._learn(facts, candidates)
        working: dict[str, dict[str, OpInfo]] = {
            trace_id: {span: _copy(info) for span, info in self._traces[trace_id].ops.items()}
            for trace_id in touched
        }
        new_keys: set[tuple[str, str]] = set()

        for row in adopted:
            ops = working.setdefault(row.trace_id, {})
            if row.span_id not in ops:
                own = own_context_of(row.attributes) if own_context_of else {}
                ops[row.span_id] = _stored_info(row, own, {}, fallback=row.context())
                self._traces[row.trace_id].parents.setdefault(row.span_id, row.parent_span_id)

        for candidate in candidates:
            row = candidate.row
            ops = working[row.trace_id]
            state = stored.get(row.key)
            live = getattr(state, "current", None)
            if live is not None:
                if row.span_id not in ops:  # stored before this process remembered it
                    ops[row.span_id] = _stored_info(live, candidate.own_context, candidate.resource_context)
                continue
            known = ops.get(row.span_id)
            if known is not None and (known.counted or known.unstored is not None):
                continue  # a duplicate of something this process already handled
            version = getattr(state, "max_version", 0) + 1
            ops[row.span_id] = OpInfo(
                timestamp_ns=row.timestamp_ns,
                parent=row.parent_span_id,
                has_tokens=row.has_tokens,
                own_context=candidate.own_context,
                resource_context=candidate.resource_context,
                version=version - 1,
                unstored=row._replace(version=version),
            )
            new_keys.add(row.key)

        for trace_id, ops in working.items():
            trace = self._traces[trace_id]
            for span_id, desired in self._desired(trace, ops).items():
                info = ops[span_id]
                key = (trace_id, span_id)
                if key in new_keys and info.unstored is not None:
                    if desired.counted:
                        row = _with_context(info.unstored, desired.context)
                        plan.new_rows.append(row)
                        info.version, info.counted, info.context, info.unstored = row.version, True, desired.context, None
                    else:
                        info.unstored = _with_context(info.unstored, desired.context)
                    plan.remember[key] = info
                elif desired.counted != info.counted or (desired.counted and desired.context != info.context):
                    plan.changes[key] = desired
                    plan.remember[key] = info
                elif key not in self._remembered(trace_id):
                    plan.remember[key] = info
        return plan

    def apply(self, plan: Plan, stored_versions: Mapping[tuple[str, str], tuple[int, bool, tuple[str, ...]]]) -> None:
        """Remember what the commit stored. `stored_versions` gives, for each changed
        key, the live version, whether it counts, and its context after the write."""
        for (trace_id, span_id), info in plan.remember.items():
            trace = self._traces.get(trace_id)
            if trace is None:
                continue
            if (trace_id, span_id) in stored_versions:
                info.version, info.counted, info.context = stored_versions[(trace_id, span_id)]
                info.unstored = None if info.counted else info.unstored
            trace.ops[span_id] = info

    # --- internals --------------------------------------------------------

    def _remembered(self, trace_id: str) -> dict[str, OpInfo]:
        return self._traces[trace_id].ops

    def _learn(self, facts: Iterable[SpanFact], candidates: list[Candidate]) -> set[str]:
        """Record the links and context tags of the spans of every trace this commit touches."""
        touched = {c.row.trace_id for c in candidates}
        facts = list(facts)
        touched.update(f.trace_id for f in facts if f.context or f.trace_id in self._traces)
        now = self.clock()
        for trace_id in touched:
            if trace_id not in self._traces:
                self._traces[trace_id] = TraceState()
            self._traces.move_to_end(trace_id)
            self._seen_at[trace_id] = now
        for fact in facts:
            if fact.trace_id not in touched:
                continue
            trace = self._traces[fact.trace_id]
            trace.parents[fact.span_id] = fact.parent_span_id
            if not fact.parent_span_id:
                trace.root = fact.span_id
            if fact.context:
                trace.contexts[fact.span_id] = fact.context
        for candidate in candidates:
            row = candidate.row
            trace = self._traces[row.trace_id]
            trace.parents.setdefault(row.span_id, row.parent_span_id)
            if not row.parent_span_id:
                trace.root = row.span_id
        return touched

    def _desired(self, trace: TraceState, ops: dict[str, OpInfo]) -> dict[str, Desired]:
        chains = {span_id: self._ancestors(trace, info.parent) for span_id, info in ops.items()}
        superseded: set[str] = set()
        for span_id, chain in chains.items():
            leaf = ops[span_id]
            for ancestor_id in chain:
                outer = ops.get(ancestor_id)
                if outer is None:
                    continue
                if leaf.has_tokens or not outer.has_tokens:
                    superseded.add(ancestor_id)
                else:
                    superseded.add(span_id)
        desired = {}
        for span_id, info in ops.items():
            levels = [info.own_context]
            levels.extend(trace.contexts[a] for a in chains[span_id] if a in trace.contexts)
            context = resolve_context(self.keys, levels, info.resource_context)
            if info.fallback:
                context = tuple(found or kept for found, kept in zip(context, info.fallback))
            desired[span_id] = Desired(span_id not in superseded, context)
        return desired

    @staticmethod
    def _ancestors(trace: TraceState, parent: str) -> list[str]:
        """Ancestor span ids, nearest first. When a link is missing, the trace's
        root (an ancestor of every span in it) stands in for the unknown rest."""
        chain: list[str] = []
        current: str | None = parent
        while current and len(chain) < MAX_DEPTH and current not in chain:
            chain.append(current)
            current = trace.parents.get(current)
        if current is None and trace.root and trace.root not in chain:
            chain.append(trace.root)
        return chain

    def _expire(self) -> None:
        cutoff = self.clock() - self.window
        while self._traces:
            oldest = next(iter(self._traces))
            if self._seen_at[oldest] >= cutoff and len(self._traces) <= self.max_traces:
                break
            del self._traces[oldest]
            del self._seen_at[oldest]


def reconcile(
    plan: Plan, live_rows: Mapping[tuple[str, str], Operation | None]
) -> tuple[list[Operation], dict[tuple[str, str], tuple[int, bool, tuple[str, ...]]]]:
    """Rows that move each changed operation from its live stored state to the wanted one.

    Works from the rows read back from storage, not from memory, so a state
    written meanwhile by another process is cancelled correctly.
    """
    rows = list(plan.new_rows)
    outcome: dict[tuple[str, str], tuple[int, bool, tuple[str, ...]]] = {}
    for key, desired in plan.changes.items():
        live = live_rows.get(key)
        info = plan.remember.get(key)
        if live is None:
            unstored = info.unstored if info else None
            if desired.counted and unstored is not None:
                row = _with_context(unstored._replace(version=max(unstored.version, (info.version if info else 0) + 1)), desired.context)
                rows.append(row)
                outcome[key] = (row.version, True, desired.context)
            else:
                outcome[key] = (info.version if info else 0, False, desired.context)
            continue
        if desired.counted and live.context() == desired.context:
            outcome[key] = (live.version, True, desired.context)
            continue
        rows.append(live.cancelled())
        if desired.counted:
            new_state = _with_context(live._replace(version=live.version + 1), desired.context)
            rows.append(new_state)
            outcome[key] = (new_state.version, True, desired.context)
        else:
            if info is not None and info.unstored is None:
                info.unstored = live._replace(version=live.version + 1)
            outcome[key] = (live.version, False, desired.context)
    return rows, outcome


def _with_context(row: Operation, context: tuple[str, ...]) -> Operation:
    return row._replace(**dict(zip(CONTEXT_FIELDS, context)))


def _stored_info(
    row: Operation,
    own: Mapping[str, str],
    resource: Mapping[str, str],
    fallback: tuple[str, ...] | None = None,
) -> OpInfo:
    return OpInfo(
        timestamp_ns=row.timestamp_ns,
        parent=row.parent_span_id,
        has_tokens=row.has_tokens,
        own_context=own,
        resource_context=resource,
        fallback=fallback,
        version=row.version,
        counted=True,
        context=row.context(),
    )


def _copy(info: OpInfo) -> OpInfo:
    return OpInfo(
        info.timestamp_ns,
        info.parent,
        info.has_tokens,
        info.own_context,
        info.resource_context,
        info.fallback,
        info.version,
        info.counted,
        info.context,
        info.unstored,
    )
