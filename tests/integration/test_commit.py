"""Context from ancestors, nested model calls and duplicates, through the pipeline into ClickHouse.

Each `send()` is one export request. The checks read the live state of each
span and, separately, sums over all rows (what every analytics query
computes), so a correction that left a wrong intermediate sum would show.
"""

from __future__ import annotations

import pytest

from clickhouse.operations import OperationStore
from clickhouse.operations import _refusals_are_permanent as _refusals
from clickhouse.staging import Encoded
from ingest.errors import StorageRejected
from tests.support.spans import START, new_trace, request, span, span_id

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


def ids(message) -> str:
    return message.span_id.hex()


def by_profile(pipeline, trace: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in pipeline.rows(trace):
        counts[row["profile_id"]] = counts.get(row["profile_id"], 0) + row["sign"]
    return {profile: count for profile, count in counts.items() if count}


def test_context_on_a_parent_in_the_same_export(pipeline):
    trace = new_trace()
    parent = span(UMBRACO, trace=trace, name="POST /umbraco/ai")
    chat = span(CHAT, trace=trace, parent=ids(parent))
    pipeline.send(request(chat, parent))
    row = pipeline.only(trace)
    assert (row["profile_id"], row["profile_alias"], row["user_id"]) == ("profile-1", "writer", "user-1")
    assert (row["feature_type"], row["feature_id"], row["entity_id"], row["entity_type"]) == ("prompt", "summarise", "1057", "document")
    assert len(pipeline.rows(trace)) == 1, "no correction needed"


def test_context_on_an_ancestor_exported_later(pipeline):
    trace = new_trace()
    root = span(UMBRACO, trace=trace, name="POST /umbraco/ai")
    middle = span({}, trace=trace, parent=ids(root), name="ChatClient")
    chat = span(CHAT, trace=trace, parent=ids(middle))
    pipeline.send(request(chat))
    assert pipeline.only(trace)["profile_id"] == "" and pipeline.net(trace) == 1
    pipeline.send(request(middle))
    assert pipeline.only(trace)["profile_id"] == "", "the ancestor has not arrived yet"
    pipeline.send(request(root))
    row = pipeline.only(trace)
    assert (row["profile_id"], row["user_id"], row["version"]) == ("profile-1", "user-1", 2)
    assert pipeline.net(trace) == 1 and pipeline.net(trace, "input_tokens") == 10, "sums stay exact across the correction"
    assert by_profile(pipeline, trace) == {"profile-1": 1}


def test_the_rollup_follows_corrections(pipeline):
    trace = new_trace()
    own_hour = START + 1000 * 3_600_000_000_000 + 7  # no other test writes this hour
    root = span(UMBRACO, trace=trace, start=own_hour - 1)
    chat = span(CHAT, trace=trace, parent=ids(root), start=own_hour)
    pipeline.send(request(chat))
    pipeline.send(request(root))
    rollup = pipeline.database.client().query(
        "SELECT key, sum(requests), sum(input_tokens) FROM usage_hourly WHERE dimension = 'profile' "
        "AND hour = toStartOfHour(fromUnixTimestamp64Nano({ts:Int64}, 'UTC')) GROUP BY key HAVING sum(requests) != 0",
        parameters={"ts": own_hour},
    ).result_rows
    assert rollup == [("profile-1", 1, 10)], "the unknown profile's row was cancelled"


def test_context_on_an_ancestor_exported_earlier(pipeline):
    trace = new_trace()
    root = span(UMBRACO, trace=trace)
    chat = span(CHAT, trace=trace, parent=ids(root))
    pipeline.send(request(root))
    pipeline.send(request(chat))
    assert pipeline.only(trace)["profile_id"] == "profile-1"
    assert len(pipeline.rows(trace)) == 1


def test_the_nearest_ancestor_wins(pipeline):
    trace = new_trace()
    outer = span({"umbraco.ai.profile.id": "outer", "umbraco.ai.user.id": "outer-user"}, trace=trace)
    inner = span({"umbraco.ai.profile.id": "inner"}, trace=trace, parent=ids(outer))
    chat = span(CHAT, trace=trace, parent=ids(inner))
    pipeline.send(request(chat, inner, outer))
    row = pipeline.only(trace)
    assert (row["profile_id"], row["user_id"]) == ("inner", "outer-user"), "each field from its nearest carrier"


def test_an_umbraco_tag_on_an_ancestor_beats_a_generic_user_key_on_the_span(pipeline):
    trace = new_trace()
    root = span({"umbraco.ai.user.id": "umbraco-user"}, trace=trace)
    chat = span({**CHAT, "gen_ai.user": "end-user"}, trace=trace, parent=ids(root))
    pipeline.send(request(chat))
    assert pipeline.only(trace)["user_id"] == "end-user"
    pipeline.send(request(root))
    assert pipeline.only(trace)["user_id"] == "umbraco-user"


def test_a_root_with_context_applies_across_a_missing_link(pipeline):
    trace = new_trace()
    root = span(UMBRACO, trace=trace)
    chat = span(CHAT, trace=trace, parent=span_id())  # its parent is never exported
    pipeline.send(request(chat))
    pipeline.send(request(root))
    assert pipeline.only(trace)["profile_id"] == "profile-1"


def test_resource_context_is_the_last_resort(pipeline):
    trace = new_trace()
    root = span({"umbraco.ai.user.id": "from-ancestor"}, trace=trace)
    chat = span(CHAT, trace=trace, parent=ids(root))
    pipeline.send(request(chat, root, resource={"service.name": "s", "umbraco.ai.user.id": "from-resource", "umbraco.ai.profile.id": "p-res"}))
    row = pipeline.only(trace)
    assert (row["user_id"], row["profile_id"]) == ("from-ancestor", "p-res")


def test_nested_model_calls_count_the_leaf(pipeline):
    trace = new_trace()
    outer = span({"gen_ai.operation.name": "chat.completions", "gen_ai.usage.input_tokens": 10}, trace=trace)
    inner = span(CHAT, trace=trace, parent=ids(outer))
    pipeline.send(request(inner, outer))
    assert pipeline.only(trace)["span_id"] == ids(inner)
    assert pipeline.net(trace) == 1


@pytest.mark.parametrize(
    "outer_attributes",
    [
        {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 10},
        # A root alone in its export with its own context tags is stored
        # directly; its tags must not hide it from the leaf, or both would count.
        {**CHAT, **UMBRACO},
    ],
    ids=["plain outer call", "outer call with its own context"],
)
def test_nested_call_whose_leaf_arrives_later_cancels_the_outer(pipeline, outer_attributes):
    trace = new_trace()
    outer = span(outer_attributes, trace=trace)
    inner = span(CHAT, trace=trace, parent=ids(outer))
    pipeline.send(request(outer))
    assert pipeline.net(trace) == 1
    pipeline.send(request(inner))
    assert pipeline.only(trace)["span_id"] == ids(inner)
    assert pipeline.net(trace) == 1 and pipeline.net(trace, "input_tokens") == 10


def test_a_plain_span_exported_before_the_rest_of_its_trace_still_links_a_later_call(pipeline):
    """A span with no call and no tags, first of its trace to arrive, needs no
    write; its link is still remembered for the call exported after it."""
    trace = new_trace()
    tagged = span(UMBRACO, trace=trace, parent=span_id())  # not the root: its parent is in another service
    middle = span({"http.method": "POST"}, trace=trace, parent=ids(tagged))
    chat = span(CHAT, trace=trace, parent=ids(middle))
    commits = pipeline.service.batcher.stats["commits"]
    pipeline.send(request(middle))
    assert pipeline.service.batcher.stats["commits"] == commits, "nothing to store yet"
    pipeline.send(request(tagged))
    pipeline.send(request(chat))
    assert pipeline.only(trace)["profile_id"] == "profile-1"


def test_a_plain_span_between_two_calls_arriving_first_keeps_one_count(pipeline):
    trace = new_trace()
    outer = span(CHAT, trace=trace, parent=span_id())
    middle = span({"http.method": "POST"}, trace=trace, parent=ids(outer))
    inner = span(CHAT, trace=trace, parent=ids(middle))
    pipeline.send(request(middle))
    pipeline.send(request(outer))
    pipeline.send(request(inner))
    assert pipeline.only(trace)["span_id"] == ids(inner)
    assert pipeline.net(trace) == 1


def test_an_outer_call_with_tokens_wins_over_a_leaf_without(pipeline):
    trace = new_trace()
    outer = span(CHAT, trace=trace)
    inner = span({"gen_ai.operation.name": "chat"}, trace=trace, parent=ids(outer))
    pipeline.send(request(inner, outer))
    assert pipeline.only(trace)["span_id"] == ids(outer)


def test_a_leaf_without_tokens_stored_first_gives_way_to_an_outer_call_with_tokens(pipeline):
    trace = new_trace()
    outer = span(CHAT, trace=trace)
    inner = span({"gen_ai.operation.name": "chat"}, trace=trace, parent=ids(outer))
    pipeline.send(request(inner))
    pipeline.send(request(outer))
    assert pipeline.only(trace)["span_id"] == ids(outer)
    assert pipeline.net(trace) == 1 and pipeline.net(trace, "input_tokens") == 10


def test_agent_spans_are_not_counted_and_their_calls_are(pipeline):
    trace = new_trace()
    agent = span({"gen_ai.operation.name": "invoke_agent", "gen_ai.usage.input_tokens": 20}, trace=trace)
    first = span(CHAT, trace=trace, parent=ids(agent))
    second = span(CHAT, trace=trace, parent=ids(agent))
    pipeline.send(request(first, second, agent))
    assert pipeline.net(trace) == 2 and pipeline.net(trace, "input_tokens") == 20


def test_the_same_export_twice_counts_once(pipeline):
    trace = new_trace()
    http = span({"http.method": "POST"}, trace=trace)
    first = span(CHAT, trace=trace, parent=ids(http))
    second = span(CHAT, trace=trace, parent=ids(http))
    lone = span(CHAT, trace=new_trace())  # a root call alone in its trace takes the direct path
    pipeline.send(request(first, second, http, lone))
    pipeline.send(request(first, second, http, lone))
    pipeline.send(request(first, first, second, lone, lone))
    assert pipeline.net(trace) == 2 and len(pipeline.rows(trace)) == 2
    assert pipeline.net(lone.trace_id.hex()) == 1 and len(pipeline.rows(lone.trace_id.hex())) == 1


def test_a_retry_after_restart_counts_once_and_late_context_still_applies(make_pipeline):
    trace = new_trace()
    root = span(UMBRACO, trace=trace)
    chat = span(CHAT, trace=trace, parent=ids(root))
    first = make_pipeline()
    first.send(request(chat))
    first.close()
    second = make_pipeline()  # a restart: nothing in memory
    second.send(request(chat))  # the client's retry
    assert second.net(trace) == 1
    second.send(request(root))
    assert second.only(trace)["profile_id"] == "profile-1" and second.net(trace) == 1


def test_a_root_ancestor_arriving_at_a_process_that_never_saw_the_call(make_pipeline):
    """Server mode: the call went to one ingest process, its request span to another."""
    trace = new_trace()
    root = span({**UMBRACO, "gen_ai.user": "ignored-lower-priority"}, trace=trace)
    chat = span({**CHAT, "user.id": "own-generic-user"}, trace=trace, parent=ids(root), start=START + 1000)
    one, two = make_pipeline(), make_pipeline()
    one.send(request(chat))
    two.send(request(root))
    row = two.only(trace)
    assert (row["profile_id"], row["user_id"]) == ("profile-1", "user-1"), "Umbraco's tag beats the span's own generic key"
    assert two.net(trace) == 1


def test_ignored_scopes_are_dropped(make_pipeline):
    ignoring = make_pipeline(ignored_scopes=("com.anthropic.sdk.python",))
    trace = new_trace()
    ignoring.send(request(span(CHAT, trace=trace), scope="com.anthropic.sdk.python"))
    ignoring.send(request(span(CHAT, trace=trace), scope="opentelemetry.instrumentation.anthropic"))
    assert [row["scope_name"] for row in ignoring.live(trace).values()] == ["opentelemetry.instrumentation.anthropic"]


def test_partial_success_counts_unusable_ai_spans_only(pipeline):
    trace = new_trace()
    result = pipeline.send(
        request(
            span(CHAT, trace=trace),
            span(CHAT, trace=trace, duration=-5),
            span({"http.method": "GET"}, trace=trace, duration=-5),  # not an AI span: skipped, not rejected
        )
    )
    assert result.rejected_spans == 1
    assert "end time is before start time" in result.error_message
    assert pipeline.net(trace) == 1


def test_spans_without_operations_or_context_need_no_write(pipeline):
    before = pipeline.service.batcher.stats["commits"]
    pipeline.send(request(span({"http.method": "GET"}, trace=new_trace()), span({"db.system": "sql"}, trace=new_trace())))
    assert pipeline.service.batcher.stats["commits"] == before


def test_data_clickhouse_refuses_is_a_permanent_error(database):
    store = OperationStore(database)
    with pytest.raises(StorageRejected, match="code 27"):
        with _refusals():
            store._insert(database.client(), Encoded(b"", b"", [b'{"decision": {"startTimeUnixNano": "not a number"}}']))


def test_a_plain_span_arriving_first_joins_two_calls_exported_together_later(pipeline):
    """The calls' export alone shows no nesting (the span between them came
    before, with nothing to store); the remembered link still makes one count."""
    trace = new_trace()
    outer = span(CHAT, trace=trace, parent=span_id())
    middle = span({"http.method": "POST"}, trace=trace, parent=ids(outer))
    inner = span(CHAT, trace=trace, parent=ids(middle))
    pipeline.send(request(middle))
    pipeline.send(request(inner, outer))
    assert pipeline.only(trace)["span_id"] == ids(inner)
    assert pipeline.net(trace) == 1
