"""The writer never holds the Python slot across a ClickHouse call (ingest.pipeline._commit).

While its duplicate look-up waits on ClickHouse, request threads must still
decode and map other exports, so that they can answer (503 once the in-flight
limit is reached) instead of queueing behind a query that hangs.
"""

from __future__ import annotations

import threading
import time

from ingest.codec import PROTOBUF
from tests.support.spans import new_trace, request, span


def chat(trace: str) -> bytes:
    return request(span({"gen_ai.operation.name": "chat", "gen_ai.usage.input_tokens": 3}, trace=trace))


def test_request_threads_decode_and_map_while_the_writer_waits_on_clickhouse(make_pipeline):
    pipeline = make_pipeline()
    service = pipeline.service
    in_lookup, release = threading.Event(), threading.Event()
    lookup = service.store.lookup

    def slow_lookup(keys):
        in_lookup.set()
        release.wait(10)
        return lookup(keys)

    service.store.lookup = slow_lookup
    first = new_trace()
    sender = threading.Thread(target=pipeline.send, args=(chat(first),))
    sender.start()
    try:
        assert in_lookup.wait(10), "the writer never reached its look-up"
        started = time.monotonic()
        decoded = service.receive(chat(new_trace()), PROTOBUF)  # decodes and maps in the Python slot
        assert time.monotonic() - started < 2, "decoding or mapping waited for the writer's ClickHouse call"
        assert len(decoded.mapped.candidates) == 1 and not decoded.rejections
    finally:
        release.set()
        sender.join(10)
    assert pipeline.net(first) == 1
