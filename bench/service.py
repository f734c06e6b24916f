"""The service under test and the processes around it: start, stop, memory, storage.

The service is the real `ai-usage serve` in a child process on embedded
ClickHouse in its own data directory. chdb locks a data directory to one
process, so anything that reads the tables (stored counts, merges, disk use)
runs in a short-lived child process while the service is stopped.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_env(data_dir: Path) -> dict[str, str]:
    """The environment of the service and the CLI: defaults everywhere except storage and log level."""
    # No keys, no tuning inherited from the caller's shell: measure the defaults.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AI_USAGE_") and k != "CLICKHOUSE_URL"}
    env |= {"CLICKHOUSE_URL": f"chdb://{data_dir}", "AI_USAGE_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
    return env


class Service:
    """`ai-usage serve --port P` on embedded ClickHouse in `data_dir`."""

    def __init__(self, data_dir: Path, log_path: Path):
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 300) -> Service:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(self.port)],
            cwd=REPO,
            env=service_env(self.data_dir),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self._log = log
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited with {self.process.returncode}; see {self.log_path}")
            if self._ready():
                return self
            time.sleep(0.2)
        raise RuntimeError(f"service not ready after {timeout} s; see {self.log_path}")

    def _ready(self) -> bool:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            connection.request("GET", "/health/ready")
            ok = connection.getresponse().status == 200
            connection.close()
            return ok
        except OSError:
            return False

    def worker_pid(self) -> int:
        """The gunicorn worker (the process that decodes, maps and holds the engine)."""
        children = child_pids(self.pid)
        return children[0] if children else self.pid

    def stop(self, timeout: float = 300) -> int:
        """SIGTERM: gunicorn drains accepted exports before it exits."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._log.close()
        return code


def child_pids(pid: int) -> list[int]:
    children: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                children.extend(int(c) for c in handle.read().split())
    except OSError:
        pass
    return children


def tree_rss(pid: int) -> int:
    """Resident memory of a process and all its descendants, in bytes."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
        stack.extend(child_pids(current))
    return total


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its live descendants, in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total, stack = 0.0, [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/stat") as handle:
                # Fields after the command name, which may contain spaces: utime and stime are 14 and 15.
                fields = handle.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
        except (OSError, IndexError, ValueError):
            continue
        stack.extend(child_pids(current))
    return total


class PeakRss:
    """Samples a process tree's resident memory every `interval` seconds; `peak` is the maximum seen."""

    def __init__(self, pid: Callable[[], int | None], interval: float = 0.1):
        self._pid = pid
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            pid = self._pid()
            if pid is not None:
                self.peak = max(self.peak, tree_rss(pid))
            self._stop.wait(self.interval)


def in_child(function: Callable[..., T], *args: Any) -> T:
    """Run `function(*args)` in a fresh process: it may open a chdb engine of its own."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def _client(data_dir: str) -> Any:
    import clickhouse_connect

    return clickhouse_connect.get_client(dsn=f"chdb://{data_dir}")


def stored_counts(data_dir: str, window: tuple[float, float]) -> dict[str, int]:
    """(In a child process.) Operations stored in all and within a time window (Unix seconds), and inserts in it."""
    client = _client(data_dir)
    try:
        row = client.query(
            """
            WITH received_at >= fromUnixTimestamp64Milli({start:Int64}, 'UTC')
                 AND received_at < fromUnixTimestamp64Milli({end:Int64}, 'UTC') AS received_in_window
            SELECT sum(sign) AS total,
                   sumIf(sign, received_in_window) AS in_window,
                   -- received_at is set once per insert: distinct values are the writer's group commits
                   uniqExactIf(received_at, received_in_window) AS inserts
            FROM operations
            """,
            parameters={"start": int(window[0] * 1000), "end": int(window[1] * 1000)},
        ).named_results()
        return {k: int(v) for k, v in next(iter(row)).items()}
    finally:
        client.close()


def settle(data_dir: str, max_seconds: float, quiet_seconds: float = 5.0) -> dict[str, int]:
    """(In a child process.) Let background merges finish, then report parts, rows and disk use.

    Freshly generated data is many parts; merging them is what a live service
    does in its first minutes, and measuring query latency during those merges
    would measure the merges.
    """
    client = _client(data_dir)
    try:
        deadline = time.monotonic() + max_seconds
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            if client.command("SELECT count() FROM system.merges") == 0:
                if time.monotonic() - quiet_since >= quiet_seconds:
                    break
            else:
                quiet_since = time.monotonic()
            time.sleep(0.5)
        rows = client.query(
            """
            SELECT table, count() AS parts, sum(rows) AS rows, sum(bytes_on_disk) AS bytes
            FROM system.parts
            WHERE active AND database = currentDatabase() AND table IN ('operations', 'usage_hourly')
            GROUP BY table
            """
        ).named_results()
        report: dict[str, int] = {"merging": int(client.command("SELECT count() FROM system.merges"))}
        for row in rows:
            for key in ("parts", "rows", "bytes"):
                report[f"{row['table']}_{key}"] = int(row[key])
        return report
    finally:
        client.close()


def generate(data_dir: Path, operations: int, days: int, log_path: Path) -> tuple[float, int]:
    """`ai-usage generate` into `data_dir`; returns (seconds, peak RSS of the command)."""
    with open(log_path, "ab") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "generate", "--operations", str(operations), "--days", str(days)],
            cwd=REPO,
            env=service_env(data_dir) | {"AI_USAGE_LOG_LEVEL": "INFO"},  # the per-batch rates, in the log
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        with PeakRss(lambda: process.pid) as rss:
            code = process.wait()
        elapsed = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"ai-usage generate exited with {code}; see {log_path}")
    return elapsed, rss.peak


def directory_bytes(paths: Iterable[Path]) -> int:
    total = 0
    for path in paths:
        for root, _, files in os.walk(path):
            for name in files:
                try:
                    total += os.lstat(os.path.join(root, name)).st_size
                except OSError:
                    pass
    return total
