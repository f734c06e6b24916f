"""ingest.pipeline.WriterFirstSlot: one holder at a time, and the writer before waiting request threads."""

from __future__ import annotations

import threading
import time

from ingest.pipeline import WriterFirstSlot


def test_the_writer_goes_before_request_threads_that_asked_earlier():
    slot = WriterFirstSlot()
    order: list[str] = []
    holding = threading.Event()
    release = threading.Event()

    def first_mapper():
        with slot.mapper():
            holding.set()
            release.wait(5)
            order.append("first")

    def mapper(name: str):
        with slot.mapper():
            order.append(name)

    def writer():
        with slot.writer():
            order.append("writer")

    threads = [threading.Thread(target=first_mapper)]
    threads[0].start()
    assert holding.wait(5)
    waiting = [threading.Thread(target=mapper, args=(f"mapper-{i}",)) for i in range(4)]
    for thread in waiting:
        thread.start()
    time.sleep(0.1)  # the request threads are waiting before the writer asks
    threads.append(threading.Thread(target=writer))
    threads[-1].start()
    time.sleep(0.1)
    release.set()
    for thread in threads + waiting:
        thread.join(5)
    assert order[:2] == ["first", "writer"]
    assert sorted(order[2:]) == [f"mapper-{i}" for i in range(4)]


def test_one_holder_at_a_time():
    slot = WriterFirstSlot()
    inside = 0
    most = 0
    lock = threading.Lock()

    def work(role):
        nonlocal inside, most
        for _ in range(200):
            with (slot.writer() if role == "writer" else slot.mapper()):
                with lock:
                    inside += 1
                    most = max(most, inside)
                with lock:
                    inside -= 1

    threads = [threading.Thread(target=work, args=("writer",))] + [threading.Thread(target=work, args=("mapper",)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert most == 1
