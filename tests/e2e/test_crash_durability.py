"""A crash loses nothing acknowledged and counts nothing twice: SIGKILL, restart on the same data, client retries.

The real `ai-usage serve` (gunicorn, embedded ClickHouse) runs in a child
process and is killed with SIGKILL, master and worker at once: no drain, no
clean shutdown of the engine. It is then started again on the same data
directory. What counts is what the analytics API answers over ranges that read
each storage level (whole days: usage_daily; whole hours: usage_hourly; partial
hours: operations), the audit log (one item per live operation), and at the end
the operations table itself.

A kill that lands inside an insert can leave its rows in operations and not in
a rollup (ClickHouse commits each table's part on its own); the start that
follows repairs that (clickhouse/reconcile.py). The in-flight test makes such a
kill likely; tests/integration/test_reconcile.py makes the cut deterministically.
"""

from __future__ import annotations

import queue
import threading
import time

import requests

from tests.api.reference import Sent
from tests.e2e.test_otlp_protocol import PROTO
from tests.support.otel import export, http_exporter
from tests.support.service import ServiceProcess, read_table
from tests.support.usage import Batch, Calls, assert_counted_once, live_ids


def assert_table_holds_each_once(data_dir, calls: dict[str, Sent]) -> None:
    """Read after the service stopped: one live row per call in operations, and rollups that agree with it."""
    rows = read_table(data_dir, "SELECT trace_id || span_id AS id, sum(sign) AS n FROM operations GROUP BY id")
    assert {row["id"]: row["n"] for row in rows} == dict.fromkeys(calls, 1)
    totals = read_table(data_dir, (
        "SELECT (SELECT sum(sign) FROM operations) AS raw,"
        " (SELECT sum(requests) FROM usage_hourly WHERE dimension = 'all') AS hourly,"
        " (SELECT sum(requests) FROM usage_daily WHERE dimension = 'all') AS daily"
    ))
    assert totals == [{"raw": len(calls), "hourly": len(calls), "daily": len(calls)}]


def post(service: ServiceProcess, body: bytes) -> int | str:
    try:
        return requests.post(f"{service.url}/v1/traces", data=body, headers=PROTO, timeout=20).status_code
    except requests.RequestException as error:
        return type(error).__name__


def test_sigkill_right_after_acknowledged_exports_then_client_retries(tmp_path):
    data = tmp_path / "data"
    service = ServiceProcess(data).start()
    calls = Calls(step_ns=90 * 10**9)
    exporter = http_exporter(f"{service.url}/v1/traces", "protobuf")
    acknowledged: dict[str, Sent] = {}
    batches: list[Batch] = []
    try:
        for _ in range(3):
            for _ in range(4):
                batch = calls.batch(traces=6)
                export(exporter, batch.spans)  # answered 200
                batches.append(batch)
                acknowledged.update(batch.calls)
            service.kill()  # right after the last 200: nothing drains
            service.start()  # same data directory, same port
            assert_counted_once(service, acknowledged)

            # The client re-sends what it sent around the crash (its answer may
            # have been lost), and something older: each still counts once.
            for batch in (batches[-1], batches[-2], batches[0]):
                export(exporter, batch.spans)
            assert_counted_once(service, acknowledged)
    finally:
        exporter.shutdown()
        assert service.stop() == 0, service.output()
    assert service.output().count("worker stopped") == 1, "only the last stop drained: the kills did not"
    assert_table_holds_each_once(data, acknowledged)


def test_sigkill_while_exports_are_in_flight_then_clients_resend_what_failed(tmp_path):
    """Four clients export without pause; SIGKILL lands with exports in flight, three times.

    Whatever was answered 200 is stored once. An export that failed may or
    may not have been stored, and is re-sent after the restart: in the end
    every call counts exactly once.
    """
    data = tmp_path / "data"
    service = ServiceProcess(data).start()
    calls = Calls(step_ns=7 * 10**8)
    everything: dict[str, Sent] = {}
    try:
        for crash in range(3):
            pending: queue.Queue[Batch] = queue.Queue()
            for _ in range(16):
                pending.put(calls.batch(traces=200))  # 300 calls: inserts long enough for a kill to land inside one
            answered: list[tuple[Batch, int | str]] = []
            lock = threading.Lock()
            enough = threading.Event()

            def client() -> None:
                while True:
                    try:
                        batch = pending.get_nowait()
                    except queue.Empty:
                        return
                    status = post(service, batch.body)
                    with lock:
                        answered.append((batch, status))
                        if sum(1 for _, s in answered if s == 200) >= 4:
                            enough.set()
                    if status != 200:
                        return  # the service is gone: this client retries after the restart

            clients = [threading.Thread(target=client) for _ in range(4)]
            for thread in clients:
                thread.start()
            assert enough.wait(60), f"exports were not acknowledged: {[s for _, s in answered]}"
            time.sleep((0.0, 0.1, 0.2)[crash])  # the kill meets the writer at a different point each time
            service.kill()
            for thread in clients:
                thread.join(30)
            assert not any(thread.is_alive() for thread in clients)
            acknowledged = [batch for batch, status in answered if status == 200]
            failed = [batch for batch, status in answered if status != 200]
            assert failed, f"the kill found no export in flight (crash {crash}); answers: {[s for _, s in answered]}"
            for batch, _ in answered:
                everything.update(batch.calls)

            service.start()
            stored = live_ids(service)
            assert len(stored) == len(set(stored)), "an operation is stored twice"
            must = {key for batch in acknowledged for key in batch.calls}
            assert must <= set(stored), f"{len(must - set(stored))} acknowledged calls lost"
            assert set(stored) <= set(everything), "stored calls nobody sent"
            # The rollups hold exactly what the table holds, whatever the crash interrupted.
            assert_counted_once(service, {key: everything[key] for key in stored})

            for batch in failed + acknowledged[-2:]:  # the clients' retries, and a re-sent acknowledged export
                assert post(service, batch.body) == 200
            assert_counted_once(service, everything)
    finally:
        assert service.stop() == 0, service.output()
    assert service.output().count("worker stopped") == 1, "only the last stop drained: the kills did not"
    assert_table_holds_each_once(data, everything)
