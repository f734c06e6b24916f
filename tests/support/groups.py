"""Random groups of exports for the writer's decisions, and a store that holds nothing."""

from __future__ import annotations

import random

from tests.support.spans import new_trace, request, span, span_id

CHAT = {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 3}


class NothingStored:
    """A store that holds nothing: the writer's decisions alone are under test."""

    def lookup(self, keys):
        return {}

    def in_traces(self, trace_ids, start_ns, end_ns):
        return {}

    def healthy(self):
        return True


def random_export(
    rng: random.Random, traces: list[tuple[str, list[str]]], tags: tuple[dict, ...], resources: tuple[dict | None, ...] = (None,)
) -> bytes:
    """One to five spans, in new traces or in `traces` (updated): calls or plain spans,
    some tagged, under a parent seen before, an unseen one or none, sometimes a span again."""
    spans = []
    for _ in range(rng.randrange(1, 6)):
        if traces and rng.random() < 0.6:
            trace, known = rng.choice(traces)
        else:
            trace, known = new_trace(), []
            traces.append((trace, known))
        own = span_id() if not known or rng.random() < 0.7 else rng.choice(known)  # sometimes a retry
        parent = rng.choice(["", *known]) if known and rng.random() < 0.8 else ("" if rng.random() < 0.5 else span_id())
        attributes = dict(CHAT) if rng.random() < 0.6 else {}
        if rng.random() < 0.4:
            attributes |= rng.choice(tags)
        spans.append(span(attributes, trace=trace, span=own, parent=parent if parent != own else ""))
        known.append(own)
    return request(*spans, resource=rng.choice(resources))
