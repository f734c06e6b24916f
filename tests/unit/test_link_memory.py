"""LinkMemory: the bounded parent links of plain spans, for calls that arrive after them."""

from __future__ import annotations

from ingest.context import MAX_LINKS_PER_TRACE, LinkMemory, SpanFact


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fact(trace: str, span: str, parent: str) -> SpanFact:
    return SpanFact(trace, span, parent, 0, 1, None)


def test_links_are_kept_per_trace_and_read_without_being_taken():
    memory = LinkMemory(window_seconds=60, max_traces=10, clock=Clock())
    memory.add([fact("t1", "a", "root"), fact("t1", "b", "a"), fact("t2", "c", "")])
    assert memory.links(["t1", "t3"]) == {"t1": {"a": "root", "b": "a"}}
    assert memory.links(["t1", "t2"]) == {"t1": {"a": "root", "b": "a"}, "t2": {"c": ""}}, "reading leaves them"


def test_a_span_seen_twice_keeps_its_first_link():
    memory = LinkMemory(window_seconds=60, max_traces=10, clock=Clock())
    memory.add([fact("t", "a", "p")])
    memory.add([fact("t", "a", "other")])
    assert memory.links(["t"]) == {"t": {"a": "p"}}


def test_traces_untouched_for_the_window_are_forgotten():
    clock = Clock()
    memory = LinkMemory(window_seconds=60, max_traces=10, clock=clock)
    memory.add([fact("old", "a", "p")])
    clock.now += 30
    memory.add([fact("recent", "b", "p")])
    clock.now += 31
    memory.add([fact("new", "c", "p")])
    assert set(memory.links(["old", "recent", "new"])) == {"recent", "new"}


def test_memory_holds_at_most_max_traces_the_oldest_dropped_first():
    memory = LinkMemory(window_seconds=60, max_traces=3, clock=Clock())
    for trace in ("t1", "t2", "t3"):
        memory.add([fact(trace, "a", "p")])
    memory.add([fact("t1", "b", "a")])  # touching t1 makes t2 the oldest
    memory.add([fact("t4", "a", "p")])
    assert len(memory) == 3
    assert set(memory.links(["t1", "t2", "t3", "t4"])) == {"t1", "t3", "t4"}


def test_a_huge_trace_keeps_a_bounded_number_of_links():
    memory = LinkMemory(window_seconds=60, max_traces=3, clock=Clock())
    memory.add([fact("t", f"s{i}", "p") for i in range(MAX_LINKS_PER_TRACE + 50)])
    assert len(memory.links(["t"])["t"]) == MAX_LINKS_PER_TRACE


def test_memory_holds_at_most_max_links_in_all():
    memory = LinkMemory(window_seconds=60, max_traces=100, clock=Clock(), max_links=10)
    for trace in range(5):
        memory.add([fact(f"t{trace}", f"s{i}", "p") for i in range(4)])
    kept = memory.links([f"t{trace}" for trace in range(5)])
    assert sum(len(links) for links in kept.values()) <= 10
    assert set(kept) == {"t3", "t4"}, "the oldest traces go first"
