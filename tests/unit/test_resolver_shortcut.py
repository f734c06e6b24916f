"""The resolver's shortcut for unnested calls decides exactly what the general rule decides.

`ContextResolver._desired_unnested` handles the common trace (calls side by
side under an ancestor not seen yet) without following ancestor chains; for
every trace it accepts, its answer must equal `_desired_nested`'s.
"""

from __future__ import annotations

import random

from ingest.config import ContextKeys
from ingest.context import ContextResolver, OpInfo, TraceState

KEYS = ContextKeys()
TAGS = sorted(KEYS.all_keys())


def random_context(rng: random.Random) -> dict[str, str]:
    if rng.random() < 0.5:
        return {}
    return {key: f"{key}-{rng.randrange(3)}" for key in rng.sample(TAGS, rng.randrange(1, 4))}


def random_trace(rng: random.Random) -> tuple[TraceState, dict[str, OpInfo]]:
    spans = [f"s{i}" for i in range(rng.randrange(1, 7))]
    trace = TraceState()
    # Some spans were seen (parent links), some carry tags, one may be the root.
    for span in spans:
        if rng.random() < 0.4:
            trace.parents[span] = rng.choice(["", *spans, "unseen"])
            if not trace.parents[span]:
                trace.root = span
            if rng.random() < 0.4:
                trace.contexts[span] = random_context(rng) or {TAGS[0]: "tag"}
    ops = {}
    for span in rng.sample(spans, rng.randrange(1, len(spans) + 1)):
        ops[span] = OpInfo(
            timestamp_ns=rng.randrange(10**9),
            parent=rng.choice(["unseen-a", "unseen-b", *spans]) if rng.random() < 0.9 else "",
            has_tokens=rng.random() < 0.6,
            own_context=random_context(rng),
            resource_context=random_context(rng) if rng.random() < 0.3 else {},
            fallback=tuple(f"f{i}" for i in range(8)) if rng.random() < 0.1 else None,
        )
    return trace, ops


def test_the_shortcut_agrees_with_the_general_rule_wherever_it_answers():
    resolver = ContextResolver(KEYS, 120)
    rng = random.Random(11)
    answered = 0
    for _ in range(5000):
        trace, ops = random_trace(rng)
        shortcut = resolver._desired_unnested(trace, ops)
        if shortcut is not None:
            answered += 1
            assert shortcut == resolver._desired_nested(trace, ops), (trace, ops)
        assert resolver._desired(trace, ops) == resolver._desired_nested(trace, ops), (trace, ops)
    assert answered > 500  # the common case is covered, not only the fallbacks
