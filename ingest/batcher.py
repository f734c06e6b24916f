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
from typing import Generic, TypeVar

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


class Batcher(Generic[Item]):
    def __init__(
        self,
        commit: Callable[[list[Item]], None],
        probe: Callable[[], bool],
        *,
        max_in_flight_spans: int,
        batch_max_spans: int,
        linger_seconds: float,
        retry_after_seconds: int,
        name: str = "ingest-writer",
        observer: IngestObserver = NO_OBSERVER,
    ):
        self._commit = commit
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
        while True:
            group = self._next_group()
            if group is None:
                return
            self._write(group)

    def _next_group(self) -> list[Ticket[Item]] | None:
        with self._cond:
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
            group: list[Ticket[Item]] = []
            size = 0
            while self._queue and (not group or size + self._queue[0].spans <= self._batch_max):
                ticket = self._queue.popleft()
                group.append(ticket)
                size += ticket.spans
            return group

    def _queued_spans(self) -> int:
        return sum(ticket.spans for ticket in self._queue)

    def _write(self, group: list[Ticket[Item]]) -> None:
        outcomes = self._attempt(group)
        with self._cond:
            for ticket in group:
                self._in_flight -= ticket.spans
        for ticket, error in outcomes:
            ticket.resolve(error)

    def _attempt(self, group: list[Ticket[Item]]) -> list[tuple[Ticket[Item], BaseException | None]]:
        """Commit a group; when storage refuses its data, commit each export alone
        so that only the one carrying the bad data is refused."""
        error: BaseException | None = None
        try:
            self._commit_group(group)
            self.stats["commits"] += 1
            self.stats["spans_committed"] += sum(t.spans for t in group)
        except StorageRejected as refusal:
            if len(group) > 1:
                log.warning("storage refused a group's data; retrying its %d exports one by one: %s", len(group), refusal)
                return [outcome for ticket in group for outcome in self._attempt([ticket])]
            log.error("storage refused an export's data: %s", refusal)
            error = refusal
        except IngestError as failure:
            error = failure
        except Exception as failure:  # noqa: BLE001 - storage faults come in many types
            log.warning("write failed, answering 503 until storage answers again: %s", failure)
            error = StorageUnavailable("storage is unavailable; retry shortly", self._retry_after)
            with self._cond:
                self._storage_down = True
        if error is not None:
            self.stats["failed_commits"] += 1
        return [(ticket, error) for ticket in group]

    def _commit_group(self, group: list[Ticket[Item]]) -> None:
        """Commit one group and tell the observer how long it took and how it ended."""
        spans = sum(ticket.spans for ticket in group)
        started = time.perf_counter()
        try:
            self._commit([ticket.item for ticket in group])
        except BaseException as error:
            self._observer.commit_finished(len(group), spans, time.perf_counter() - started, error)
            raise
        self._observer.commit_finished(len(group), spans, time.perf_counter() - started, None)

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
