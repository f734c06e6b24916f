"""Group commit: exports queue here, one thread stores them in as few inserts as possible.

`offer()` never blocks. It refuses with `Overloaded` when the spans already
waiting would exceed the in-flight limit, with `StorageUnavailable` while the
last write failed and storage has not answered a probe since, and with
`ShuttingDown` once `close()` began; the transport turns each into a 503 with
Retry-After. Every accepted export is answered through its `Ticket` only
after the commit that contains it returned, so a 200 always means stored.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, Protocol, TypeVar

from ingest.errors import IngestError, Overloaded, RetryableError, ShuttingDown, StorageRejected, StorageUnavailable
from ingest.observe import NO_OBSERVER, IngestObserver

log = logging.getLogger(__name__)

Item = TypeVar("Item")


class Ticket(Generic[Item]):
    """One queued export: its payload, its size in spans, and its outcome."""

    __slots__ = ("item", "spans", "_done", "_error")

    def __init__(self, item: Item, spans: int):
        self.item = item
        self.spans = spans
        self._done = threading.Event()
        self._error: BaseException | None = None

    def wait(self, timeout: float) -> None:
        """Return once stored; raise the commit's error, or a retryable one on timeout."""
        if not self._done.wait(timeout):
            # Still queued or being written: the client retries, and the
            # duplicate check drops whatever this attempt stores meanwhile.
            raise RetryableError("storing the export took too long; retry")
        if self._error is not None:
            raise self._error

    def resolve(self, error: BaseException | None = None) -> None:
        self._error = error
        self._done.set()


class Prepared(Protocol):
    """A group decided and not stored yet: `write()` stores it, `undo()` takes the decisions back."""

    def write(self) -> None: ...

    def undo(self) -> None: ...


def commit_now(prepared: Prepared) -> None:
    """Store a prepared group at once; its decisions are taken back when that fails."""
    try:
        prepared.write()
    except BaseException:
        prepared.undo()
        raise


def whole(commit: Callable[[list[Any]], None]) -> Callable[[list[Any]], Prepared]:
    """`prepare` for a commit function that decides and stores in one step."""
    return lambda items: _Whole(commit, items)


class _Whole:
    """A group for a one-step commit function: nothing to undo."""

    def __init__(self, commit: Callable[[list[Any]], None], items: list[Any]):
        self._commit, self._items = commit, items

    def write(self) -> None:
        self._commit(self._items)

    def undo(self) -> None:
        pass


class _Writing(Generic[Item]):
    """A prepared group and, once submitted, its write."""

    __slots__ = ("group", "spans", "prepared", "prepare_seconds", "future")

    def __init__(self, group: list[Ticket[Item]], prepared: Prepared, prepare_seconds: float):
        self.group = group
        self.spans = sum(ticket.spans for ticket in group)
        self.prepared = prepared
        self.prepare_seconds = prepare_seconds
        self.future: Future[float] = Future()


class Batcher(Generic[Item]):
    def __init__(
        self,
        prepare: Callable[[list[Item]], Prepared],
        probe: Callable[[], bool],
        *,
        max_in_flight_spans: int,
        batch_max_spans: int,
        linger_seconds: float,
        retry_after_seconds: int,
        name: str = "ingest-writer",
        observer: IngestObserver = NO_OBSERVER,
    ):
        """`prepare` decides a group and returns what stores it and what takes the
        decisions back, so that the next group is decided while this one is
        stored (`whole` adapts a function that does both at once)."""
        self._prepare_items = prepare
        self._name = name
        self._probe = probe
        self._max_in_flight = max_in_flight_spans
        self._batch_max = batch_max_spans
        self._linger = linger_seconds
        self._retry_after = retry_after_seconds
        self._observer = observer
        self._queue: deque[Ticket[Item]] = deque()
        self._in_flight = 0
        self._cond = threading.Condition()
        self._closing = False
        self._storage_down = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.stats = {"commits": 0, "failed_commits": 0, "spans_committed": 0}

    def start(self) -> None:
        self._thread.start()

    @property
    def in_flight_spans(self) -> int:
        return self._in_flight

    @property
    def storage_down(self) -> bool:
        return self._storage_down

    def offer(self, item: Item, spans: int) -> Ticket[Item]:
        ticket = Ticket(item, spans)
        with self._cond:
            if self._closing:
                raise ShuttingDown("the service is shutting down; retry", self._retry_after)
            if self._storage_down:
                raise StorageUnavailable("storage is unavailable; retry shortly", self._retry_after)
            # An export larger than the whole limit is still taken when nothing
            # else waits, so a big batch is slow rather than never accepted.
            if self._in_flight and self._in_flight + spans > self._max_in_flight:
                raise Overloaded(
                    f"ingester is over its in-flight limit ({self._max_in_flight} spans); retry shortly",
                    self._retry_after,
                )
            self._in_flight += spans
            self._queue.append(ticket)
            self._cond.notify_all()
        return ticket

    def close(self, timeout: float) -> bool:
        """Refuse new exports, store everything already accepted; True when drained in time."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        drained = not self._thread.is_alive()
        if not drained:
            log.error("shutdown timed out with %d spans not stored; their exports get 503", self._in_flight)
            self._fail_remaining(ShuttingDown("the service is shutting down; retry", self._retry_after))
        return drained

    # --- writer thread ---------------------------------------------------

    def _run(self) -> None:
        # The writer decides the next group (`prepare`: the duplicate look-up and
        # the decisions, in Python) while the insert thread stores the previous
        # one (ClickHouse, mostly without the interpreter lock), so the two
        # overlap instead of taking turns. Groups are still stored one at a
        # time and in order, and an export is answered only after its own
        # group's write returned. A group prepared on top of a write that
        # fails is undone and goes back to the front of the queue.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{self._name}-insert") as inserts:
            writing: _Writing[Item] | None = None
            while True:
                group = self._next_group(writing)
                prepared = self._prepare(group, alone=writing is None) if group else None
                if writing is not None:
                    if not self._finish(writing, on_top=prepared):
                        prepared = None  # undone and queued again by _finish
                    writing = None
                if prepared is not None:
                    writing = self._start(inserts, prepared)
                elif group is None:
                    return

    def _next_group(self, writing: _Writing[Item] | None = None) -> list[Ticket[Item]] | None:
        """The next group; None once closing with nothing left.

        While a write is in flight: once as many spans wait as that write
        holds, or once it ends, whatever is queued ([] when nothing is).
        Taking the first export that arrives instead halved the groups under
        load, and every insert costs embedded ClickHouse about 150 ms before
        its first row (`python -m bench.commit`)."""
        with self._cond:
            if writing is not None:
                enough = min(writing.spans, self._batch_max)
                while not writing.future.done() and not self._closing and self._queued_spans() < enough:
                    self._cond.wait(0.5)
                if self._storage_down or not self._queue:
                    return []
                return self._take()
            while True:
                if self._storage_down and not self._closing:
                    # Exports are refused while down, so nothing would wake
                    # this thread: probe until storage answers.
                    self._cond.release()
                    try:
                        self._wait_for_storage()
                    finally:
                        self._cond.acquire()
                    continue
                if self._queue:
                    break
                if self._closing:
                    return None
                self._cond.wait(0.5)
            # Linger briefly so concurrent exports share one insert.
            deadline = time.monotonic() + self._linger
            while not self._closing and self._queued_spans() < self._batch_max:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self._take()

    def _take(self) -> list[Ticket[Item]]:
        group: list[Ticket[Item]] = []
        size = 0
        while self._queue and (not group or size + self._queue[0].spans <= self._batch_max):
            ticket = self._queue.popleft()
            group.append(ticket)
            size += ticket.spans
        return group

    def _queued_spans(self) -> int:
        return sum(ticket.spans for ticket in self._queue)

    def _prepare(self, group: list[Ticket[Item]], alone: bool) -> _Writing[Item] | None:
        """Decide a group. When that fails with no write in flight, its exports are
        answered now (as a failed commit); with one in flight, the group goes back
        to the queue, to be decided again once that write has ended."""
        started = time.perf_counter()
        try:
            prepared = self._prepare_items([ticket.item for ticket in group])
        except Exception as failure:  # noqa: BLE001 - the look-up's storage faults come in many types
            if not alone:
                self._put_back(group)
                return None
            self._commit_finished(group, time.perf_counter() - started, failure)
            self._resolve(group, self._after_failure(group, failure))
            return None
        return _Writing(group, prepared, time.perf_counter() - started)

    def _start(self, inserts: ThreadPoolExecutor, writing: _Writing[Item]) -> _Writing[Item]:
        def write() -> float:
            started = time.perf_counter()
            writing.prepared.write()
            return time.perf_counter() - started

        writing.future = inserts.submit(write)
        writing.future.add_done_callback(lambda _: self._wake())
        return writing

    def _finish(self, writing: _Writing[Item], on_top: _Writing[Item] | None) -> bool:
        """Wait for a group's write and answer its exports; whether it was stored.

        When it failed, the group prepared on top of it (`on_top`) is undone
        first and queued again, then this one is undone: newest first, so that
        memory is back where it was before this group, as if neither had come.
        """
        group = writing.group
        try:
            seconds = writing.prepare_seconds + writing.future.result()
        except Exception as failure:  # noqa: BLE001 - storage faults come in many types
            if on_top is not None:
                self._requeue(on_top)
            writing.prepared.undo()
            self._commit_finished(group, writing.prepare_seconds, failure)
            self._resolve(group, self._after_failure(group, failure))
            return False
        self._commit_finished(group, seconds, None)
        self._resolve(group, [(ticket, None) for ticket in group])
        return True

    def _requeue(self, writing: _Writing[Item]) -> None:
        """A group decided on top of a write that failed: undo it, decide it again later."""
        writing.prepared.undo()
        self._put_back(writing.group)

    def _put_back(self, group: list[Ticket[Item]]) -> None:
        with self._cond:
            self._queue.extendleft(reversed(group))  # still in flight: the count stays

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _resolve(self, group: list[Ticket[Item]], outcomes: list[tuple[Ticket[Item], BaseException | None]]) -> None:
        with self._cond:
            for ticket in group:
                self._in_flight -= ticket.spans
        for ticket, error in outcomes:
            ticket.resolve(error)

    def _attempt(self, group: list[Ticket[Item]]) -> list[tuple[Ticket[Item], BaseException | None]]:
        """Decide and store a group at once, with no other write in flight."""
        started = time.perf_counter()
        try:
            commit_now(self._prepare_items([ticket.item for ticket in group]))
        except Exception as failure:  # noqa: BLE001 - storage faults come in many types
            self._commit_finished(group, time.perf_counter() - started, failure)
            return self._after_failure(group, failure)
        self._commit_finished(group, time.perf_counter() - started, None)
        return [(ticket, None) for ticket in group]

    def _after_failure(
        self, group: list[Ticket[Item]], failure: Exception
    ) -> list[tuple[Ticket[Item], BaseException | None]]:
        """The outcomes of a group whose commit failed. When storage refuses its data,
        each export is committed alone, so that only the one carrying the bad data
        is refused."""
        error: BaseException
        if isinstance(failure, StorageRejected):
            if len(group) > 1:
                log.warning("storage refused a group's data; retrying its %d exports one by one: %s", len(group), failure)
                return [outcome for ticket in group for outcome in self._attempt([ticket])]
            log.error("storage refused an export's data: %s", failure)
            error = failure
        elif isinstance(failure, IngestError):
            error = failure
        else:
            log.warning("write failed, answering 503 until storage answers again: %s", failure)
            error = StorageUnavailable("storage is unavailable; retry shortly", self._retry_after)
            with self._cond:
                self._storage_down = True
        self.stats["failed_commits"] += 1
        return [(ticket, error) for ticket in group]

    def _commit_finished(self, group: list[Ticket[Item]], seconds: float, error: BaseException | None) -> None:
        """Count a commit and tell the observer how long it took and how it ended."""
        spans = sum(ticket.spans for ticket in group)
        if error is None:
            self.stats["commits"] += 1
            self.stats["spans_committed"] += spans
        self._observer.commit_finished(len(group), spans, seconds, error)

    def _wait_for_storage(self) -> None:
        delay = 0.25
        while not self._closing:
            if self._probe():
                log.info("storage answers again; resuming writes")
                with self._cond:
                    self._storage_down = False
                return
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _fail_remaining(self, error: RetryableError) -> None:
        with self._cond:
            tickets = list(self._queue)
            self._queue.clear()
            for ticket in tickets:
                self._in_flight -= ticket.spans
        for ticket in tickets:
            ticket.resolve(error)
