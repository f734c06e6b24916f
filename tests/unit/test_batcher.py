"""The group-commit queue on its own, with commit functions that record or fail (unit tier)."""

from __future__ import annotations

import threading

import pytest

from ingest.batcher import Batcher, whole
from ingest.errors import Overloaded, ShuttingDown, StorageRejected, StorageUnavailable


def make(commit, probe=lambda: True, prepare=None, **options):
    settings = {"max_in_flight_spans": 100, "batch_max_spans": 1000, "linger_seconds": 0.05, "retry_after_seconds": 2, **options}
    batcher = Batcher(prepare or whole(commit), probe, **settings)
    batcher.start()
    return batcher


def test_concurrent_exports_share_one_commit():
    groups = []
    batcher = make(groups.append)
    tickets = [batcher.offer(f"export-{i}", 1) for i in range(5)]
    for ticket in tickets:
        ticket.wait(5)
    batcher.close(5)
    assert groups == [[f"export-{i}" for i in range(5)]]


def test_refused_data_is_isolated_to_the_export_that_carried_it():
    commits = []

    def commit(items):
        commits.append(list(items))
        if "bad" in items:
            raise StorageRejected("ClickHouse refused the data (code 27)")

    batcher = make(commit)
    good, bad, other = (batcher.offer(name, 1) for name in ("good", "bad", "other"))
    good.wait(5)
    other.wait(5)
    with pytest.raises(StorageRejected):
        bad.wait(5)
    batcher.close(5)
    assert commits == [["good", "bad", "other"], ["good"], ["bad"], ["other"]]
    assert not batcher.storage_down, "refused data is not an outage"


def test_a_storage_fault_refuses_new_exports_until_the_probe_succeeds():
    healthy = threading.Event()

    def commit(items):
        if not healthy.is_set():
            raise ConnectionError("connection refused")

    batcher = make(commit, probe=healthy.is_set, linger_seconds=0)
    with pytest.raises(StorageUnavailable):
        batcher.offer("first", 1).wait(5)
    with pytest.raises(StorageUnavailable):
        batcher.offer("second", 1)  # refused at once while down
    healthy.set()
    for _ in range(50):
        if not batcher.storage_down:
            break
        threading.Event().wait(0.1)
    batcher.offer("third", 1).wait(5)
    batcher.close(5)


def test_the_in_flight_limit_refuses_what_would_exceed_it():
    release = threading.Event()
    batcher = make(lambda items: release.wait(5), max_in_flight_spans=10, linger_seconds=0)
    first = batcher.offer("big", 8)
    with pytest.raises(Overloaded):
        batcher.offer("too much", 5)
    release.set()
    first.wait(5)
    batcher.offer("fits now", 5).wait(5)
    batcher.close(5)


def test_close_drains_what_was_accepted_and_refuses_the_rest():
    groups = []
    batcher = make(groups.append, linger_seconds=0.5)
    ticket = batcher.offer("accepted", 1)
    assert batcher.close(5)
    ticket.wait(1)
    assert groups == [["accepted"]]
    with pytest.raises(ShuttingDown):
        batcher.offer("late", 1)


class Recorded:
    """A prepared group that logs what is done with it; `write` may wait, or fail once."""

    def __init__(self, log, items, hold=None, fail=False):
        self.log, self.items, self.hold, self.fail = log, items, hold, fail

    def write(self):
        self.log.append(("write", self.items))
        if self.hold is not None:
            assert self.hold.wait(5)
        if self.fail:
            raise ConnectionError("connection refused")

    def undo(self):
        self.log.append(("undo", self.items))


def test_the_next_group_is_decided_while_the_previous_one_is_written():
    log, second_decided = [], threading.Event()

    def prepare(items):
        log.append(("prepare", items))
        if items == ["second"]:
            second_decided.set()
        return Recorded(log, items, hold=second_decided if items == ["first"] else None)

    batcher = make(None, prepare=prepare, linger_seconds=0)
    first = batcher.offer("first", 1)
    for _ in range(50):  # the first write has started and waits for the second decision
        if ("write", ["first"]) in log:
            break
        threading.Event().wait(0.05)
    second = batcher.offer("second", 1)
    first.wait(5)
    second.wait(5)
    batcher.close(5)
    assert log == [("prepare", ["first"]), ("write", ["first"]), ("prepare", ["second"]), ("write", ["second"])]


def test_a_group_decided_on_top_of_a_failed_write_is_undone_first_and_decided_again():
    log, second_decided = [], threading.Event()
    attempts = {"first": 0}

    def prepare(items):
        log.append(("prepare", items))
        if items == ["first"]:
            attempts["first"] += 1
            return Recorded(log, items, hold=second_decided, fail=True)
        second_decided.set()
        return Recorded(log, items)

    batcher = make(None, prepare=prepare, linger_seconds=0)
    first = batcher.offer("first", 1)
    for _ in range(50):
        if ("write", ["first"]) in log:
            break
        threading.Event().wait(0.05)
    second = batcher.offer("second", 1)
    with pytest.raises(StorageUnavailable):
        first.wait(5)
    second.wait(5)
    batcher.close(5)
    assert log == [
        ("prepare", ["first"]),
        ("write", ["first"]),
        ("prepare", ["second"]),
        ("undo", ["second"]),  # newest first
        ("undo", ["first"]),
        ("prepare", ["second"]),
        ("write", ["second"]),
    ]
    assert attempts["first"] == 1, "the failed export is answered 503, not retried by the writer"
    assert batcher.in_flight_spans == 0
