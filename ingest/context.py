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
Plain spans (no call, no tags) of traces not remembered yet need no write;
their parent links are kept apart, bounded the same way (`LinkMemory`), so
that a call exported after them still reaches its ancestors.
An ancestor that arrives for a trace no longer remembered (after a restart, at
another ingest process, or past the window) is still applied: the committer
reads the trace's stored operations back (`adopted`). Not when this process
already remembers a call of that trace, nor through spans or ancestors only an
earlier process saw: README, "Late context across restarts and processes".
"""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import NamedTuple

import msgspec

from ingest import fastdecide
from ingest.config import ContextKeys
from ingest.mapping import ModelCall, resolve_context
from ingest.store import LiveState, StagedCall, StoredState

# Longest parent chain followed (a hostile trace could link spans in a loop).
MAX_DEPTH = 64


class SpanFact(msgspec.Struct, gc=False):  # one per span: built in C (see SpanRecord)
    """What the resolver keeps of any span: its place in the trace and its context tags."""

    trace_id: str
    span_id: str
    parent_span_id: str
    start_ns: int
    end_ns: int
    context: Mapping[str, str] | None


class Candidate(msgspec.Struct, gc=False):  # one per call, built in C (see SpanRecord)
    """A newly exported model call, with the context sources it carries."""

    call: ModelCall
    own_context: Mapping[str, str]
    resource_context: Mapping[str, str]
    # (trace id, span id): read several times per commit, so built once.
    key: tuple[str, str]


@dataclass(slots=True)
class OpInfo:
    """What the resolver remembers of one operation of a trace."""

    timestamp_ns: int
    parent: str
    has_tokens: bool
    own_context: Mapping[str, str]
    resource_context: Mapping[str, str]
    # Stored context that no span in memory explains (an operation read back
    # from storage whose resource is unknown): used where resolution finds nothing.
    fallback: tuple[str, ...] | None = None
    version: int = 0  # the live version when counted, else the highest stored version
    counted: bool = False
    context: tuple[str, ...] = ()
    # A call not stored yet (it is wrapped by another call): what to store if it comes to count.
    unstored: ModelCall | None = None


# A call stored directly, as the resolver keeps it until its trace needs
# memory (most never do): span id, start, parent span id, has tokens, own
# context, resource context, version, resolved context. A plain tuple costs
# half what an OpInfo does to build, on the path of nearly every call.
DirectCall = tuple[str, int, str, bool, Mapping[str, str], Mapping[str, str], int, tuple[str, ...]]


class Split(NamedTuple):
    """A group's calls sorted by who decides them (ContextResolver.split)."""

    # Calls stored as they are, with their own and their resource's context.
    direct: list[StagedCall]
    # The same calls by trace, as `remember_direct` keeps them once stored.
    remembered: dict[str, tuple[DirectCall, ...]]
    # The calls `plan` decides, and the span facts it needs.
    tracked: list[Candidate]
    trace_facts: list[SpanFact]
    # Spans of traces nobody remembers, with no call and no context: links only.
    plain: list[SpanFact]


@dataclass(slots=True)
class TraceState:
    parents: dict[str, str] = field(default_factory=dict)
    contexts: dict[str, Mapping[str, str]] = field(default_factory=dict)
    ops: dict[str, OpInfo] = field(default_factory=dict)
    root: str = ""
    # Whether this process read the trace's stored calls back since it began
    # remembering the trace: calls another process (or this one before a
    # restart) stored are then in `ops` too.
    read_back: bool = False


class Desired(NamedTuple):
    counted: bool
    context: tuple[str, ...]


@dataclass
class Plan:
    """What one commit writes. Nothing in the resolver changes until `apply`."""

    # Calls to store now (new ones, and wrapped ones that came to count).
    stage: list[StagedCall] = field(default_factory=list)
    # Stored operations whose state changes: key → wanted state.
    changes: dict[tuple[str, str], Desired] = field(default_factory=dict)
    # Everything the resolver remembers once the commit is stored.
    remember: dict[tuple[str, str], OpInfo] = field(default_factory=dict)
    # Traces whose stored calls this commit read back.
    read_back: set[str] = field(default_factory=set)


# Traces memory holds at most, by default (and traces of directly stored calls, apart).
MAX_TRACES = 200_000
# Parent links LinkMemory keeps at most: per trace (a trace of plain spans can
# be huge) and in all (about 150 bytes each).
MAX_LINKS_PER_TRACE = 1_000
MAX_LINKS = 1_000_000


class LinkMemory:
    """Parent links of plain spans (no model call, no context tags) of traces nobody remembers yet.

    Such a span needs no write, but it may be the only link between a call
    exported later and that call's ancestors (or an outer call): without it
    the call would miss their context, and two nested calls would both count.
    The request threads (an export with nothing to store never reaches the
    writer) and the writer add links here; the resolver reads a trace's links
    when a commit touches that trace. Links are kept, not taken, so a commit
    that is undone reads them again. Bounded like the resolver's memory.
    """

    def __init__(self, window_seconds: float, max_traces: int, clock: Callable[[], float], max_links: int = MAX_LINKS):
        self.window = window_seconds
        self.max_traces = max_traces
        self.max_links = max_links
        self.clock = clock
        self._lock = threading.Lock()
        self._traces: OrderedDict[str, tuple[float, dict[str, str]]] = OrderedDict()
        self._count = 0  # links held, over all traces

    def __len__(self) -> int:
        return len(self._traces)

    def add(self, facts: Iterable[SpanFact]) -> None:
        with self._lock:
            now = self.clock()
            traces = self._traces
            for fact in facts:
                entry = traces.get(fact.trace_id)
                links = entry[1] if entry is not None else {}
                if len(links) < MAX_LINKS_PER_TRACE and fact.span_id not in links:
                    links[fact.span_id] = fact.parent_span_id
                    self._count += 1
                traces[fact.trace_id] = (now, links)
                traces.move_to_end(fact.trace_id)
            cutoff = now - self.window
            while traces and (
                len(traces) > self.max_traces or self._count > self.max_links or next(iter(traces.values()))[0] < cutoff
            ):
                self._count -= len(traces.popitem(last=False)[1][1])

    def linked(self, trace_ids: Iterable[str]) -> set[str]:
        """Those of `trace_ids` that have links kept."""
        with self._lock:
            traces = self._traces
            return {trace_id for trace_id in trace_ids if trace_id in traces} if traces else set()

    def links(self, trace_ids: Iterable[str]) -> dict[str, dict[str, str]]:
        """The links kept for those of `trace_ids` that have any."""
        with self._lock:
            traces = self._traces
            if not traces:
                return {}
            return {trace_id: dict(traces[trace_id][1]) for trace_id in trace_ids if trace_id in traces}


class ContextResolver:
    def __init__(
        self,
        keys: ContextKeys,
        window_seconds: float,
        max_traces: int = MAX_TRACES,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.keys = keys
        self.window = window_seconds
        self.max_traces = max_traces
        self.clock = clock
        self._traces: OrderedDict[str, TraceState] = OrderedDict()
        self._seen_at: dict[str, float] = {}
        # Calls stored without trace memory (the common case: nothing to wait
        # for), by trace, kept compactly in case a call nested in one of them
        # or an ancestor arrives later.
        self._direct_calls: OrderedDict[str, tuple[DirectCall, ...]] = OrderedDict()
        self.links = LinkMemory(window_seconds, max_traces, clock)

    def knows(self, trace_id: str) -> bool:
        return trace_id in self._traces or trace_id in self._direct_calls

    def split(
        self, candidates: list[Candidate], facts: list[SpanFact], stored: Mapping[tuple[str, str], StoredState]
    ) -> Split:
        """Sort a group's calls: those stored as they are, and those `plan` decides
        (with the facts it needs). Changes nothing: the caller keeps the links of
        the plain spans (`links.add(split.plain)`) once it decided with this
        split. ingest/_decide.c does the same in C."""
        if fastdecide.split is not None:
            return Split(*fastdecide.split(
                candidates, facts, stored, self._traces, self._direct_calls, self.links.linked,
                self.keys.items(), self.keys.empty_context, StagedCall,
            ))
        return _split(self, candidates, facts, stored)

    def remember_direct(self, remembered: Mapping[str, tuple[DirectCall, ...]]) -> None:
        """Note calls stored directly (`Split.remembered`), by trace, compactly;
        bounded like the trace memory."""
        direct_calls = self._direct_calls
        direct_calls.update(remembered)
        while len(direct_calls) > self.max_traces:
            direct_calls.popitem(last=False)

    def __len__(self) -> int:
        return len(self._traces)

    def checkpoint(self, trace_ids: Iterable[str]) -> Callable[[], None]:
        """What memory holds of these traces now, and a function that puts it back.

        The writer decides the next group while the previous one is being
        stored, on top of what that one decided. When a write fails, what was
        decided on top of it is taken back, newest first, so that memory never
        says stored of a call that is not. Memory of other traces is not
        touched by a commit, except for evictions, which need no undoing.
        """
        traces = {}
        for trace_id in trace_ids:
            state = self._traces.get(trace_id)
            traces[trace_id] = (
                None if state is None else (_snapshot(state), self._seen_at[trace_id]),
                self._direct_calls.get(trace_id),
            )

        def restore() -> None:
            for trace_id, (kept, direct) in traces.items():
                if kept is None:
                    self._traces.pop(trace_id, None)
                    self._seen_at.pop(trace_id, None)
                else:
                    self._traces[trace_id], self._seen_at[trace_id] = kept
                if direct is None:
                    self._direct_calls.pop(trace_id, None)
                else:
                    self._direct_calls[trace_id] = direct

        return restore

    def traces_to_adopt(self, facts: Iterable[SpanFact], calls: AbstractSet[tuple[str, str]]) -> tuple[set[str], int, int]:
        """Traces whose stored calls must be read back: an ancestor with context
        arrives for a trace this process has not read back since it began
        remembering it. Calls of the trace may have been stored by another
        ingest process, or by this one before a restart or before the trace's
        window passed; the memory alone would miss them.

        Returns the trace ids and the time range their operations must lie in
        (an ancestor starts before and ends after its descendants).
        """
        self._expire()  # a trace past its window is forgotten before deciding, not after
        # Context on a model call itself (`calls`: the group's call keys) is that
        # call's own; it reaches no stored call.
        traces: set[str] = set()
        start, end = 2**63 - 1, 0
        for fact in facts:
            if fact.context and (fact.trace_id, fact.span_id) not in calls:
                state = self._traces.get(fact.trace_id)
                if state is None or not state.read_back:
                    traces.add(fact.trace_id)
                    start, end = min(start, fact.start_ns), max(end, fact.end_ns)
        return traces, start, end

    def plan(
        self,
        facts: Iterable[SpanFact],
        candidates: list[Candidate],
        stored: Mapping[tuple[str, str], StoredState],
        adopted: Mapping[tuple[str, str], StoredState] = {},
        own_context_of: Callable[[Mapping[str, str]], Mapping[str, str]] | None = None,
        read_back: Iterable[str] = (),
    ) -> Plan:
        """Decide the rows of one commit.

        `stored` maps candidate keys to what storage holds for them (the
        duplicate check); `adopted` are stored operations of traces not in
        memory, read back because an ancestor with context arrived for them.
        """
        self._expire()
        plan = Plan(read_back=set(read_back))
        touched = self._learn(facts, candidates)
        working: dict[str, dict[str, OpInfo]] = {
            trace_id: {span: _copy(info) for span, info in self._traces[trace_id].ops.items()} for trace_id in touched
        }
        new_keys: set[tuple[str, str]] = set()

        for (trace_id, span_id), state in adopted.items():
            if state.live is not None and span_id not in working.setdefault(trace_id, {}):
                own = own_context_of(state.live.context_attributes) if own_context_of else {}
                working[trace_id][span_id] = _stored_info(state.live, own, {}, fallback=state.live.context)
                self._traces[trace_id].parents.setdefault(span_id, state.live.parent_span_id)

        for candidate in candidates:
            record = candidate.call.record
            ops = working[record.trace_id]
            state = stored.get(candidate.key)
            if state is not None and state.live is not None:
                if record.span_id not in ops:  # stored before this process remembered it
                    ops[record.span_id] = _stored_info(state.live, candidate.own_context, candidate.resource_context)
                continue
            known = ops.get(record.span_id)
            if known is not None and (known.counted or known.unstored is not None):
                continue  # a duplicate of something this process already handled
            ops[record.span_id] = OpInfo(
                timestamp_ns=record.start_ns,
                parent=record.parent_span_id,
                has_tokens=candidate.call.has_tokens,
                own_context=candidate.own_context,
                resource_context=candidate.resource_context,
                version=state.max_version if state else 0,
                unstored=candidate.call,
            )
            new_keys.add(candidate.key)

        for trace_id, ops in working.items():
            trace = self._traces[trace_id]
            remembered = trace.ops
            for span_id, desired in self._desired(trace, ops).items():
                info = ops[span_id]
                key = (trace_id, span_id)
                if info.unstored is not None:
                    # Not stored yet: store it as soon as it counts.
                    if desired.counted:
                        plan.stage.append(StagedCall(info.unstored, info.version + 1, desired.context))
                        info.version, info.counted, info.context, info.unstored = info.version + 1, True, desired.context, None
                    if key in new_keys or desired.counted:
                        plan.remember[key] = info
                elif desired.counted != info.counted or (desired.counted and desired.context != info.context):
                    plan.changes[key] = desired
                    info.version += 1 if desired.counted else 0
                    info.counted, info.context = desired.counted, desired.context
                    plan.remember[key] = info
                elif span_id not in remembered:
                    plan.remember[key] = info
        return plan

    def apply(self, plan: Plan) -> None:
        """Remember what the commit stored."""
        for (trace_id, span_id), info in plan.remember.items():
            trace = self._traces.get(trace_id)
            if trace is not None:
                trace.ops[span_id] = info
        for trace_id in plan.read_back:
            trace = self._traces.get(trace_id)
            if trace is not None:
                trace.read_back = True

    # --- internals --------------------------------------------------------

    def _learn(self, facts: Iterable[SpanFact], candidates: list[Candidate]) -> set[str]:
        """Record the links and context tags of the spans of every trace this commit touches."""
        touched = {c.call.record.trace_id for c in candidates}
        facts = list(facts)
        # A trace with directly stored calls opens too: the links of its later spans count.
        touched.update(f.trace_id for f in facts if f.context or self.knows(f.trace_id))
        now = self.clock()
        for trace_id in touched:
            if trace_id not in self._traces:
                self._traces[trace_id] = state = TraceState()
                for span_id, start_ns, parent, has_tokens, own, resource, version, context in self._direct_calls.pop(trace_id, ()):
                    state.ops[span_id] = OpInfo(start_ns, parent, has_tokens, own, resource, version=version, counted=True, context=context)
                    state.parents[span_id] = parent
                    if not parent:
                        state.root = span_id
                    if own:
                        state.contexts[span_id] = own
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
        for trace_id, links in self.links.links(touched).items():
            trace = self._traces[trace_id]
            for span_id, parent in links.items():
                trace.parents.setdefault(span_id, parent)
                if not parent and not trace.root:
                    trace.root = span_id
        return touched

    def _desired(self, trace: TraceState, ops: dict[str, OpInfo]) -> dict[str, Desired]:
        simple = self._desired_unnested(trace, ops)
        return simple if simple is not None else self._desired_nested(trace, ops)

    def _desired_nested(self, trace: TraceState, ops: dict[str, OpInfo]) -> dict[str, Desired]:
        """Any trace: follow each call's ancestors for wrapping calls and context tags."""
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

    def _desired_unnested(self, trace: TraceState, ops: dict[str, OpInfo]) -> dict[str, Desired] | None:
        """`_desired` for the common trace: calls side by side under an ancestor
        not seen yet, nothing read back. Then no call wraps another and no
        ancestor has tags (a span seen has its parent link in `parents`), so
        each call counts with its own and its resource's context. None when
        the trace is not like that."""
        root = trace.root
        if root and (root in ops or root in trace.contexts):
            return None  # the root ends every chain whose links run out
        parents = trace.parents
        desired = {}
        for span_id, info in ops.items():
            parent = info.parent
            # The chain is [parent] (its parent is unknown, and the root is no call).
            if parent in ops or parent in parents or info.fallback is not None:
                return None
            own, resource = info.own_context, info.resource_context
            context = resolve_context(self.keys, [own], resource) if own or resource else self.keys.empty_context
            desired[span_id] = Desired(True, context)
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


def _split(
    resolver: ContextResolver, candidates: list[Candidate], facts: list[SpanFact], stored: Mapping[tuple[str, str], StoredState]
) -> Split:
    """ContextResolver.split in Python (ingest/_decide.c `split` is the same in C)."""
    direct_traces = _direct_traces(resolver, candidates, facts, stored)
    keys = resolver.keys
    direct: list[StagedCall] = []
    remembered: dict[str, list[DirectCall]] = {}
    tracked: list[Candidate] = []
    for candidate in candidates:
        call = candidate.call
        record = call.record
        if record.trace_id not in direct_traces:
            tracked.append(candidate)
            continue
        state = stored.get(candidate.key)
        if state is not None and state.live is not None:
            continue  # already stored: a retry
        own, resource = candidate.own_context, candidate.resource_context
        context = resolve_context(keys, [own], resource) if own or resource else keys.empty_context
        version = (state.max_version if state else 0) + 1
        direct.append(StagedCall(call, version, context))
        entry = (record.span_id, record.start_ns, record.parent_span_id, call.has_tokens, own, resource, version, context)
        remembered.setdefault(record.trace_id, []).append(entry)

    # Every span of a trace with a call or a context span here counts: the spans
    # between a stored call and its ancestor may come in the ancestor's export.
    # Not a direct call's own context: its trace's spans here are its calls,
    # whose context is already applied; remembering the trace here as well
    # would hide the calls (kept compactly, apart) from a nested call that
    # comes later, and both would count.
    traces = {c.call.record.trace_id for c in tracked} | {f.trace_id for f in facts if f.context and f.trace_id not in direct_traces}
    trace_facts, plain = [], []
    for fact in facts:
        if fact.trace_id in traces or resolver.knows(fact.trace_id):
            trace_facts.append(fact)
        elif fact.trace_id not in direct_traces:  # direct calls are remembered apart
            plain.append(fact)
    return Split(direct, {trace: tuple(calls) for trace, calls in remembered.items()}, tracked, trace_facts, plain)


def _direct_traces(
    resolver: ContextResolver, candidates: list[Candidate], facts: list[SpanFact], stored: Mapping[tuple[str, str], StoredState]
) -> set[str]:
    """Traces whose calls count as they are, with their own and their resource's context.

    In a trace nobody remembers whose only spans in this group are its
    calls, that is so for a root call alone, and for calls side by side
    under an ancestor not seen yet (the common case: Umbraco.AI's request
    span ends, so is exported, after its calls): none is the root (the
    root would wrap the others) or another's parent, and nothing is known
    above them, not even a plain span's link (one may join two of them).
    `plan` would decide the same, at several times the cost; the calls are
    remembered compactly, apart, so that a nested call or an ancestor that
    comes later still finds them. Calls stored before take `plan`'s path,
    except a lone root's retry.
    """
    calls_of: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        calls_of.setdefault(candidate.call.record.trace_id, []).append(candidate)
    spans_per_trace = Counter(fact.trace_id for fact in facts)
    direct, side_by_side = set(), set()
    for trace_id, calls in calls_of.items():
        if spans_per_trace[trace_id] != len(calls) or resolver.knows(trace_id):
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
        side_by_side -= resolver.links.linked(side_by_side)
    return direct | side_by_side


def _stored_info(
    live: LiveState,
    own: Mapping[str, str],
    resource: Mapping[str, str],
    fallback: tuple[str, ...] | None = None,
) -> OpInfo:
    return OpInfo(
        timestamp_ns=live.timestamp_ns,
        parent=live.parent_span_id,
        has_tokens=live.has_tokens,
        own_context=own,
        resource_context=resource,
        fallback=fallback,
        version=live.version,
        counted=True,
        context=live.context,
    )


def _snapshot(state: TraceState) -> TraceState:
    # Operations in memory are replaced, never changed in place (`plan` works on
    # copies), so copying the containers is enough.
    return TraceState(dict(state.parents), dict(state.contexts), dict(state.ops), state.root, state.read_back)


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
