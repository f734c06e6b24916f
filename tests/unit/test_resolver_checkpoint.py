"""Undoing a group the writer decided puts the resolver's memory back exactly.

The writer remembers a group's decisions before its insert returns, and decides
the next group on top of them (ingest.batcher). When the insert fails, both
groups are undone, newest first. Here random groups of real spans (nested
calls, context tags on ancestors, root calls alone, retries) are decided on a
memory with some history; after undoing the last two, every trace, root and
timestamp in memory must be what it was before them.
"""

from __future__ import annotations

import random

from ingest.codec import decode_protobuf
from ingest.config import IngestConfig
from ingest.pipeline import IngestService
from tests.support.groups import NothingStored, random_export

TAGS = ({"umbraco.ai.profile.id": "p1"}, {"umbraco.ai.user.id": "u1"}, {"enduser.id": "e1"})


def memory(service: IngestService):
    resolver = service.resolver
    traces = {
        trace: (dict(state.parents), dict(state.contexts), dict(state.ops), state.root, state.read_back)
        for trace, state in resolver._traces.items()
    }
    return traces, dict(resolver._direct_calls), dict(resolver._seen_at)


def test_undoing_the_last_two_groups_restores_memory_exactly():
    rng = random.Random(5)
    changed = 0
    for _ in range(300):
        service = IngestService(IngestConfig(), NothingStored())
        traces: list[tuple[str, list[str]]] = []

        def group():
            return [service.map(decode_protobuf(random_export(rng, traces, TAGS)))[0] for _ in range(rng.randrange(1, 4))]

        for _ in range(rng.randrange(0, 4)):  # history, as stored
            service._prepare(group())
        before = memory(service)
        first = service._prepare(group())
        second = service._prepare(group())
        changed += memory(service) != before
        second.undo()
        first.undo()
        assert memory(service) == before
    assert changed > 250, "the groups changed memory, so the undo had something to do"
