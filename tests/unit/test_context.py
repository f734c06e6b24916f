"""Context from ancestors, nested model calls and duplicates, through the pipeline's commit logic.

Each `send()` is one export request; the recording store keeps every row so
the tests can check both the live state and that sums over all rows (what
every analytics query computes) are right at each step.
"""

from __future__ import annotations

import pytest

from ingest.config import IngestConfig
from ingest.pipeline import IngestService
from tests.support.recording_store import RecordingStore
from tests.support.spans import START, TRACE, record, span_id

CHAT = {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5}
UMBRACO = {
    "umbraco.ai.profile.id": "profile-1",
    "umbraco.ai.profile.alias": "writer",
    "umbraco.ai.user.id": "user-1",
    "umbraco.ai.feature.type": "prompt",
    "umbraco.ai.feature.id": "summarise",
    "umbraco.ai.entity.id": "1057",
    "umbraco.ai.entity.type": "document",
}


@pytest.fixture
def store():
    return RecordingStore()


@pytest.fixture
def pipeline(store):
    service = IngestService(IngestConfig(batch_linger_ms=0), store)
    service.start()
    yield service
    service.close()


def send(pipeline, *spans):
    return pipeline.export(list(spans))


def only_live(store):
    live = store.live()
    assert len(live) == 1, live
    return next(iter(live.values()))


def test_context_on_a_parent_in_the_same_export(pipeline, store):
    request = record(UMBRACO, name="POST /umbraco/ai")
    chat = record(CHAT, parent=request.span_id)
    send(pipeline, chat, request)
    row = only_live(store)
    assert (row.profile_id, row.profile_alias, row.user_id) == ("profile-1", "writer", "user-1")
    assert (row.feature_type, row.feature_id, row.entity_id, row.entity_type) == ("prompt", "summarise", "1057", "document")
    assert len(store.rows) == 1, "no correction needed"


def test_context_on_an_ancestor_exported_later(pipeline, store):
    request = record(UMBRACO, name="POST /umbraco/ai")
    middle = record({}, parent=request.span_id, name="ChatClient")
    chat = record(CHAT, parent=middle.span_id)
    send(pipeline, chat)
    assert only_live(store).profile_id == "" and store.count() == 1
    send(pipeline, middle)
    assert only_live(store).profile_id == "", "the ancestor has not arrived yet"
    send(pipeline, request)
    row = only_live(store)
    assert (row.profile_id, row.user_id, row.version) == ("profile-1", "user-1", 2)
    assert store.count() == 1 and store.net("input_tokens") == 10, "sums stay exact across the correction"
    # Per-profile sums over all rows, as the analytics queries compute them.
    by_profile = {}
    for r in store.rows:
        by_profile[r.profile_id] = by_profile.get(r.profile_id, 0) + r.sign
    assert by_profile == {"": 0, "profile-1": 1}


def test_context_on_an_ancestor_exported_earlier(pipeline, store):
    request = record(UMBRACO)
    chat = record(CHAT, parent=request.span_id)
    send(pipeline, request)
    send(pipeline, chat)
    assert only_live(store).profile_id == "profile-1"
    assert len(store.rows) == 1


def test_the_nearest_ancestor_wins(pipeline, store):
    outer = record({"umbraco.ai.profile.id": "outer", "umbraco.ai.user.id": "outer-user"})
    inner = record({"umbraco.ai.profile.id": "inner"}, parent=outer.span_id)
    chat = record(CHAT, parent=inner.span_id)
    send(pipeline, chat, inner, outer)
    row = only_live(store)
    assert (row.profile_id, row.user_id) == ("inner", "outer-user"), "each field from its nearest carrier"


def test_an_umbraco_tag_on_an_ancestor_beats_a_generic_user_key_on_the_span(pipeline, store):
    request = record({"umbraco.ai.user.id": "umbraco-user"})
    chat = record({**CHAT, "gen_ai.user": "end-user"}, parent=request.span_id)
    send(pipeline, chat)
    assert only_live(store).user_id == "end-user"
    send(pipeline, request)
    assert only_live(store).user_id == "umbraco-user"


def test_a_root_with_context_applies_across_a_missing_link(pipeline, store):
    root = record(UMBRACO)
    missing_parent = span_id()  # a span that is never exported
    chat = record(CHAT, parent=missing_parent)
    send(pipeline, chat)
    send(pipeline, root)
    assert only_live(store).profile_id == "profile-1"


def test_nested_model_calls_count_the_leaf(pipeline, store):
    outer = record({"gen_ai.operation.name": "chat.completions", "gen_ai.usage.input_tokens": 10}, scope="semantic-kernel")
    inner = record(CHAT, parent=outer.span_id, scope="openai-instrumentation")
    send(pipeline, inner, outer)
    assert only_live(store).span_id == inner.span_id
    assert store.count() == 1


def test_nested_call_whose_leaf_arrives_later_cancels_the_outer(pipeline, store):
    outer = record({"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 10})
    inner = record(CHAT, parent=outer.span_id)
    send(pipeline, outer)
    assert store.count() == 1
    send(pipeline, inner)
    assert only_live(store).span_id == inner.span_id
    assert store.count() == 1 and store.net("input_tokens") == 10


def test_an_outer_call_with_tokens_wins_over_a_leaf_without(pipeline, store):
    outer = record(CHAT)
    inner = record({"gen_ai.operation.name": "chat"}, parent=outer.span_id)
    send(pipeline, inner, outer)
    assert only_live(store).span_id == outer.span_id


def test_agent_spans_are_not_counted_and_their_calls_are(pipeline, store):
    agent = record({"gen_ai.operation.name": "invoke_agent", "gen_ai.usage.input_tokens": 20})
    first = record(CHAT, parent=agent.span_id)
    second = record(CHAT, parent=agent.span_id)
    send(pipeline, first, second, agent)
    assert store.count() == 2 and store.net("input_tokens") == 20


def test_the_same_export_twice_counts_once(pipeline, store):
    chat = record(CHAT)
    send(pipeline, chat)
    send(pipeline, chat)
    send(pipeline, chat, chat)
    assert store.count() == 1 and len(store.rows) == 1


def test_a_retry_after_restart_counts_once_and_late_context_still_applies(store):
    request = record(UMBRACO)
    chat = record(CHAT, parent=request.span_id)
    first = IngestService(IngestConfig(batch_linger_ms=0), store)
    first.start()
    send(first, chat)
    first.close()
    second = IngestService(IngestConfig(batch_linger_ms=0), store)  # a restart: nothing in memory
    second.start()
    send(second, chat)  # the client's retry
    assert store.count() == 1
    send(second, request)
    second.close()
    assert only_live(store).profile_id == "profile-1" and store.count() == 1


def test_a_root_ancestor_arriving_at_a_process_that_never_saw_the_call(store):
    """Server mode: the call went to one ingest process, its request span to another."""
    request = record(UMBRACO)
    chat = record(CHAT, parent=request.span_id, start=START + 1000)
    one, two = (IngestService(IngestConfig(batch_linger_ms=0), store) for _ in range(2))
    one.start(), two.start()
    send(one, chat)
    send(two, request)
    one.close(), two.close()
    assert only_live(store).profile_id == "profile-1" and store.count() == 1


def test_ignored_scopes_are_dropped(store):
    service = IngestService(IngestConfig(batch_linger_ms=0, ignored_scopes=("anthropic",)), store)
    service.start()
    send(service, record(CHAT, scope="anthropic"), record(CHAT, scope="opentelemetry.instrumentation.anthropic"))
    service.close()
    assert [row.scope_name for row in store.live().values()] == ["opentelemetry.instrumentation.anthropic"]


def test_partial_success_counts_unusable_ai_spans_only(pipeline, store):
    result = send(
        pipeline,
        record(CHAT),
        record(CHAT, duration=-1),
        record({"http.method": "GET"}, duration=-1),  # not an AI span: skipped, not rejected
    )
    assert result.rejected_spans == 1
    assert "end time is before start time" in result.error_message
    assert store.count() == 1


def test_context_spans_without_operations_need_no_write(pipeline, store):
    send(pipeline, record({"http.method": "GET"}), record({"http.method": "GET"}, trace_id="1" * 32))
    assert store.inserts == 0
