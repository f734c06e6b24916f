"""The compiled group decisions (ingest/_decide.c) give what the Python ones give.

`pipeline._gather` and `context._split` are the reference. Random groups of
real exports (traces of one to several calls, nested calls, roots, plain
spans, context tags on calls, ancestors and resources, the same span twice,
retries of stored calls) are decided on random memory (traces remembered,
direct calls, kept links, stored states, the group being written) by both,
and every part of the answer must be equal, in order.
"""

from __future__ import annotations

import random

import pytest

from ingest import fastdecide
from ingest.codec import decode_protobuf
from ingest.config import IngestConfig
from ingest.context import Candidate, ContextResolver, SpanFact, Split, TraceState, _split
from ingest.mapping import ModelCall
from ingest.pipeline import Gathered, IngestService, MappedExport, _gather
from ingest.store import LiveState, LookupKeys, StagedCall, StoredState
from tests.support.groups import CHAT, NothingStored, random_export
from tests.support.spans import new_trace, request, span, span_id

pytestmark = pytest.mark.skipif(not fastdecide.AVAILABLE, reason="ingest._decide is not built")

TAGS = (
    {"umbraco.ai.profile.id": "p1", "umbraco.ai.user.id": "u1"},
    {"umbraco.ai.user.id": "u2"},
    {"enduser.id": "e1", "user.name": "Ed"},
)
RESOURCES = ({"service.name": "site"}, {"service.name": "site", "user.id": "r-user", "umbraco.ai.entity.type": "doc"})


def random_group(rng: random.Random, service: IngestService, traces) -> list[MappedExport]:
    exports = []
    for _ in range(rng.randrange(1, 5)):
        body = random_export(rng, traces, TAGS, RESOURCES)
        compiled = service.receive(body, "application/x-protobuf").mapped
        exports.append(compiled if rng.random() < 0.5 else service.map(decode_protobuf(body))[0])
    return exports


def random_memory(rng: random.Random, resolver: ContextResolver, candidates: list[Candidate]) -> None:
    """Some of the group's traces remembered, some with direct calls, some with links kept."""
    for candidate in candidates:
        trace = candidate.key[0]
        roll = rng.random()
        if roll < 0.1:
            resolver._traces[trace] = TraceState()
            resolver._seen_at[trace] = resolver.clock()
        elif roll < 0.2:
            resolver._direct_calls[trace] = ()
        elif roll < 0.3:
            resolver.links.add([candidate_fact(candidate)])


def candidate_fact(candidate: Candidate) -> SpanFact:
    """A plain span of the candidate's trace, for a kept link."""
    return SpanFact(candidate.key[0], span_id(), "", 0, 1, None)


def random_stored(rng: random.Random, candidates: list[Candidate]) -> dict[tuple[str, str], StoredState]:
    stored = {}
    for candidate in candidates:
        roll = rng.random()
        if roll < 0.1:
            live = LiveState(1, "", True, 2, ("",) * 8, {})
            stored[candidate.key] = StoredState(rng.randrange(1, 4), live)
        elif roll < 0.2:
            stored[candidate.key] = StoredState(rng.randrange(1, 4), None)  # stored, then cancelled
    return stored


def compiled_gather(exports, unwritten) -> Gathered:
    return Gathered(*fastdecide.gather(exports, unwritten, LookupKeys))


def compiled_split(resolver: ContextResolver, candidates, facts, stored) -> Split:
    return Split(*fastdecide.split(
        candidates, facts, stored, resolver._traces, resolver._direct_calls, resolver.links.linked,
        resolver.keys.items(), resolver.keys.empty_context, StagedCall,
    ))


def test_compiled_and_python_decisions_agree_on_random_groups():
    rng = random.Random(23)
    seen = {"direct": 0, "tracked": 0, "plain": 0, "remembered": 0, "unwritten": 0, "retries": 0}
    for _ in range(400):
        service = IngestService(IngestConfig(), NothingStored())
        traces: list[tuple[str, list[str]]] = []
        exports = random_group(rng, service, traces)
        every_key = [c.key for export in exports for c in export.candidates]
        unwritten = frozenset(rng.sample(every_key, min(len(every_key), rng.randrange(0, 3))))

        expected = _gather(exports, unwritten)
        got = compiled_gather(exports, unwritten)
        assert got == expected
        assert [id(c) for c in got.candidates] == [id(c) for c in expected.candidates]

        random_memory(rng, service.resolver, expected.candidates)
        stored = random_stored(rng, expected.candidates)
        expected_split = _split(service.resolver, expected.candidates, expected.facts, stored)
        got_split = compiled_split(service.resolver, expected.candidates, expected.facts, stored)
        assert got_split == expected_split
        seen["direct"] += len(expected_split.direct)
        seen["tracked"] += len(expected_split.tracked)
        seen["plain"] += len(expected_split.plain)
        seen["remembered"] += len(expected_split.remembered)
        seen["unwritten"] += bool(unwritten)
        seen["retries"] += sum(state.live is not None for state in stored.values())
    assert min(seen.values()) > 50, seen  # every branch had work to do


def call_with(own: dict, resource: dict) -> Candidate:
    record = decode_protobuf(request(span(dict(CHAT), trace=new_trace(), parent=span_id())))[0]
    call = ModelCall(record, "Chat", "chat", True, ("", ""))
    return Candidate(call, own, resource, (record.trace_id, record.span_id))


@pytest.mark.parametrize(
    ("own", "resource"),
    [
        ({"umbraco.ai.user.id": ""}, {"user.id": "from-resource"}),  # an empty own value still ends the search by key
        ({}, {"user.id": 42, "umbraco.ai.entity.id": 7}),  # values that are not text become text
        ({}, {"user.id": "", "enduser.id": "second"}),  # an empty resource value is no value
        ({}, {"user.id": None, "gen_ai.user": "third"}),
        ({"user.name": "own"}, {"umbraco.ai.user.name": "resource wins by priority"}),
        ({"umbraco.ai.profile.id": "p"}, {}),
    ],
)
def test_context_of_a_direct_call_matches_the_reference(own, resource):
    resolver = ContextResolver(IngestConfig().context_keys, 120)
    candidate = call_with(own, resource)
    record = candidate.call.record
    facts = [SpanFact(record.trace_id, record.span_id, record.parent_span_id, record.start_ns, record.end_ns, None)]
    expected = _split(resolver, [candidate], facts, {})
    assert len(expected.direct) == 1
    assert compiled_split(resolver, [candidate], facts, {}) == expected


def test_a_trace_with_many_calls_side_by_side_is_decided_alike():
    # More than eight calls of one trace: the compiled pass looks parents up in a set.
    resolver = ContextResolver(IngestConfig().context_keys, 120)
    trace, parent = new_trace(), span_id()
    ids = [span_id() for _ in range(20)]
    spans = [span(dict(CHAT), trace=trace, span=own, parent=parent) for own in ids]
    records = decode_protobuf(request(*spans))
    service = IngestService(IngestConfig(), NothingStored())
    mapped = service.map(records)[0]
    expected = _split(resolver, mapped.candidates, mapped.facts, {})
    assert len(expected.direct) == 20
    assert compiled_split(resolver, mapped.candidates, mapped.facts, {}) == expected
    # One call nested under another: the whole trace goes to the resolver.
    spans[5] = span(dict(CHAT), trace=trace, span=ids[5], parent=ids[3])
    mapped = service.map(decode_protobuf(request(*spans)))[0]
    expected = _split(resolver, mapped.candidates, mapped.facts, {})
    assert not expected.direct and len(expected.tracked) == 20
    assert compiled_split(resolver, mapped.candidates, mapped.facts, {}) == expected


def test_bad_arguments_are_type_errors_not_crashes():
    candidate = call_with({}, {})
    broken = Candidate(candidate.call, {}, {}, ["not", "a tuple"])
    with pytest.raises(TypeError):
        fastdecide.gather([MappedExport([broken], [])], frozenset(), LookupKeys)
    with pytest.raises(TypeError):
        fastdecide.split([broken], [], {}, {}, {}, set, (), (), StagedCall)
    with pytest.raises(TypeError):
        fastdecide.split([candidate], [], [], {}, {}, set, (), (), StagedCall)
    with pytest.raises(TypeError):
        fastdecide.gather([MappedExport([candidate], [])], frozenset())
