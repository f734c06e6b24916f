"""Late context when the ingester that stored a call no longer remembers its trace.

The context resolver's memory of recent traces is in-process. After a
restart, or at another ingest process (several processes against one
ClickHouse server), or once the trace's window has passed, the ingester
knows only what is stored: the operations (with their parent span id and
context), not the spans between them or ancestors that carried context.
These tests pin down what still gets attributed then and what does not
(README: "Late context across restarts and processes"). Each runs three
times: a restart (the first pipeline is closed first), another process (both
pipelines live, on one database), and one process after the trace's window.
"""

from __future__ import annotations

import pytest

from tests.integration.test_commit import CHAT, UMBRACO, ids
from tests.support.spans import START, new_trace, request, span, span_id

SECOND = 10**9


@pytest.fixture(params=["restart", "another process", "window passed"])
def before_and_after(request, make_pipeline):
    """(the pipeline that stores the first exports, a function giving the one that gets the later ones)."""
    if request.param == "window passed":
        first = make_pipeline()
        resolver = first.service.resolver
        now = [0.0]
        resolver.clock = lambda: now[0]

        def later():
            now[0] += resolver.window + 1  # the same process, once the trace's window has passed
            return first

        return first, later

    first = make_pipeline()

    def later():
        if request.param == "restart":
            first.close()
        return make_pipeline()

    return first, later


def profiles(pipeline, trace: str) -> dict[str, str]:
    """Profile id of each live operation of a trace, by span id."""
    return {span: row["profile_id"] for span, row in pipeline.live(trace).items()}


def test_a_root_ancestor_alone_reaches_a_call_stored_before(before_and_after):
    """The stored call's own parent link is known; the root, an ancestor of every span, fills any gap above it."""
    first, later = before_and_after
    trace = new_trace()
    root = span(UMBRACO, trace=trace, duration=10 * SECOND)
    middle = span({}, trace=trace, parent=ids(root), start=START + 1)
    chat = span(CHAT, trace=trace, parent=ids(middle), start=START + 2)
    first.send(request(chat, middle))
    second = later()
    second.send(request(root))
    assert profiles(second, trace) == {ids(chat): "profile-1"}
    assert second.net(trace) == 1 and second.net(trace, "input_tokens") == 10


def test_a_non_root_ancestor_reaches_a_stored_call_through_spans_in_its_own_export(before_and_after):
    """The request span has a remote parent (a traceparent header): it is not the root, so the
    link from the call to it must come from the spans exported with it."""
    first, later = before_and_after
    trace = new_trace()
    request_span = span(UMBRACO, trace=trace, parent=span_id(), duration=10 * SECOND)
    middle = span({}, trace=trace, parent=ids(request_span), start=START + 1)
    chat = span(CHAT, trace=trace, parent=ids(middle), start=START + 2)
    first.send(request(chat))
    second = later()
    second.send(request(middle, request_span))
    assert profiles(second, trace) == {ids(chat): "profile-1"}


def test_a_non_root_ancestor_does_not_reach_a_call_through_a_span_exported_before(before_and_after):
    """Limitation: the link between the call and the ancestor was a span exported to the
    first ingester; nothing stores it, so the call stays without context."""
    first, later = before_and_after
    trace = new_trace()
    request_span = span(UMBRACO, trace=trace, parent=span_id(), duration=10 * SECOND)
    middle = span({}, trace=trace, parent=ids(request_span), start=START + 1)
    chat = span(CHAT, trace=trace, parent=ids(middle), start=START + 2)
    first.send(request(chat, middle))
    second = later()
    second.send(request(request_span))
    assert profiles(second, trace) == {ids(chat): ""}


@pytest.mark.parametrize("order", ["with the ancestor", "before the ancestor"])
def test_a_call_stored_before_is_attributed_when_a_sibling_reaches_the_later_ingester_first(before_and_after, order):
    """The later ingester reads a trace's stored calls back the first time an ancestor with context
    arrives for it, even when a sibling call of the trace is already in its memory."""
    first, later = before_and_after
    trace = new_trace()
    root = span(UMBRACO, trace=trace, duration=10 * SECOND)
    one = span(CHAT, trace=trace, parent=ids(root), start=START + 1)
    two = span(CHAT, trace=trace, parent=ids(root), start=START + 2)
    first.send(request(one))
    second = later()
    if order == "with the ancestor":
        second.send(request(two, root))
    else:
        second.send(request(two))
        second.send(request(root))
    assert profiles(second, trace) == {ids(one): "profile-1", ids(two): "profile-1"}
    assert second.net(trace) == 2


def test_an_ancestor_the_first_ingester_saw_is_forgotten(before_and_after):
    """Limitation: an ancestor is remembered, not stored; a call arriving after it at another
    ingester (or after a restart) has no context."""
    first, later = before_and_after
    trace = new_trace()
    root = span(UMBRACO, trace=trace, duration=10 * SECOND)
    chat = span(CHAT, trace=trace, parent=ids(root), start=START + 1)
    first.send(request(root))
    second = later()
    second.send(request(chat))
    assert profiles(second, trace) == {ids(chat): ""}
