"""The writer decides the next group while ClickHouse stores the previous one.

Each test holds the first group's insert until the second group, a retry of the
same export, has been decided on top of it, then lets the insert go on or makes
it fail for real (its table is renamed away for that one insert). Either way
every call must end up counted once, with its ancestor's context: decided on
top of a write that failed, the retry is decided again rather than taken for a
duplicate of what was never stored.
"""

from __future__ import annotations

import threading

import pytest

from clickhouse import staging
from clickhouse.operations import OperationStore
from ingest.config import IngestConfig
from ingest.errors import StorageUnavailable
from tests.integration.conftest import Pipeline
from tests.support.spans import new_trace, request, span

CHAT = {"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5}
PROFILE = {"umbraco.ai.profile.id": "profile-7", "umbraco.ai.profile.alias": "editor"}
WAIT = 20


class HeldStore:
    """The real store, whose first insert waits until the test lets it go (and may fail)."""

    def __init__(self, store: OperationStore, fail_first: bool):
        self._store = store
        self._fail_first = fail_first
        self.first_insert_started = threading.Event()
        self.release_first_insert = threading.Event()
        self._inserts = 0

    def __getattr__(self, name):
        return getattr(self._store, name)

    def stage(self, calls):
        self._inserts += 1
        if self._inserts > 1:
            return self._store.stage(calls)
        self.first_insert_started.set()
        assert self.release_first_insert.wait(WAIT)
        if not self._fail_first:
            return self._store.stage(calls)
        client = self._store.database.client()
        client.command(f"RENAME TABLE {staging.TABLE} TO {staging.TABLE}_away")
        try:
            return self._store.stage(calls)  # fails: the table is not there
        finally:
            client.command(f"RENAME TABLE {staging.TABLE}_away TO {staging.TABLE}")


@pytest.fixture
def held(database):
    started = []

    def start(fail_first: bool) -> tuple[Pipeline, HeldStore]:
        config = IngestConfig(batch_linger_ms=0)
        store = HeldStore(OperationStore(database, config.context_keys.all_keys()), fail_first)
        pipeline = Pipeline(database, config, store=store)
        started.append(pipeline)
        return pipeline, store

    yield start
    for pipeline in started:
        pipeline.close()


def _export():
    """A root call alone in its trace, and a call under a span with Umbraco context."""
    alone, nested = new_trace(), new_trace()
    root_call = span(CHAT, trace=alone, name="chat alone")
    parent = span(PROFILE, trace=nested, name="POST /umbraco/ai")
    call = span(CHAT, trace=nested, parent=parent.span_id.hex(), name="chat nested")
    return request(root_call, parent, call), alone, nested


def _send_in_background(pipeline, body, outcomes, name):
    def run():
        try:
            outcomes[name] = pipeline.send(body)
        except Exception as error:  # noqa: BLE001 - the outcome is what the test checks
            outcomes[name] = error

    worker = threading.Thread(target=run)
    worker.start()
    return worker


def _decided_signal(pipeline) -> threading.Event:
    """Set once the writer has decided a second group (the retry) on top of the first."""
    decided = threading.Event()
    batcher = pipeline.service.batcher
    prepare, calls = batcher._prepare_items, []

    def counting(items):
        prepared = prepare(items)
        calls.append(len(items))
        if len(calls) == 2:
            decided.set()
        return prepared

    batcher._prepare_items = counting
    return decided


@pytest.mark.parametrize(
    ("fail_first", "memory"),
    [(False, True), (True, True), (False, False)],
    ids=["first-insert-succeeds", "first-insert-fails", "first-attempt-forgotten"],
)
def test_a_retry_decided_while_the_first_attempt_is_stored_counts_once(held, fail_first, memory):
    pipeline, store = held(fail_first)
    if not memory:
        # Memory keeps no trace (as when it is full): the retry is still known
        # to be a copy of a call in the group being written.
        pipeline.service.resolver.max_traces = 0
    decided = _decided_signal(pipeline)
    body, alone, nested = _export()
    outcomes: dict = {}

    first = _send_in_background(pipeline, body, outcomes, "first")
    assert store.first_insert_started.wait(WAIT)
    retry = _send_in_background(pipeline, body, outcomes, "retry")
    assert decided.wait(WAIT), "the retry was decided while the first insert was held"
    store.release_first_insert.set()
    first.join(WAIT)
    retry.join(WAIT)

    if fail_first:
        assert isinstance(outcomes["first"], StorageUnavailable)
    else:
        assert outcomes["first"].accepted_operations == 2
    assert outcomes["retry"].accepted_operations == 2
    assert pipeline.net(alone) == 1
    assert pipeline.net(nested) == 1
    assert pipeline.only(nested)["profile_id"] == "profile-7"
    assert pipeline.net(alone, "input_tokens") == 10
