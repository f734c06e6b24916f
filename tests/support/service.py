"""Running the service for tests: in this process, or as the real `ai-usage serve` command.

chdb hosts one engine per process, so every in-process service of a test run
shares the session's engine (one data directory) and gets a database of its
own. A subprocess service has its own data directory.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import requests
from werkzeug.serving import make_server

from app import create_app
from app.settings import Settings
from clickhouse.client import Target
from ingest.config import IngestConfig

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_settings(chdb_dir: Path, **overrides) -> Settings:
    """Settings for an in-process service with a fresh database; ingest fields may be overridden."""
    ingest_fields = {f.name for f in dataclasses.fields(IngestConfig)}
    ingest_overrides = {k: overrides.pop(k) for k in list(overrides) if k in ingest_fields}
    ingest = IngestConfig(**{"batch_linger_ms": 2, **ingest_overrides})
    database = f"t_{uuid.uuid4().hex[:12]}"
    return Settings(clickhouse_url=f"chdb://{chdb_dir}?database={database}", retention_days=0, ingest=ingest, **overrides)


class InProcessService:
    """The Flask app behind a real threaded HTTP server on a free loopback port."""

    def __init__(self, settings: Settings, role: str = "all"):
        self.settings = settings
        self.app = create_app(settings, role=role)
        self.runtime = self.app.extensions["ai_usage"]
        self.port = free_port()
        self._server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database(self):
        return self.runtime.database

    def query(self, sql: str, parameters: dict | None = None) -> list[dict]:
        result = self.database.client().query(sql, parameters=parameters or {})
        return list(result.named_results())

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join(5)
        self.runtime.close()
        drop_database(self.settings.clickhouse_url)


def drop_database(url: str) -> None:
    target = Target.parse(url)
    client = target.connect("default")
    try:
        client.command("DROP DATABASE IF EXISTS {name:Identifier} SYNC", parameters={"name": target.database})
    finally:
        client.close()


class ServiceProcess:
    """`ai-usage serve` in a child process, with its own data directory."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, args: list[str] | None = None):
        self.data_dir = data_dir
        self.port = free_port()
        self.env = {
            **os.environ,
            "CLICKHOUSE_URL": f"chdb://{data_dir}",
            "AI_USAGE_BATCH_LINGER_MS": "2",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.args = args or []
        self.process: subprocess.Popen | None = None
        self.log_path = data_dir.parent / f"service-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> ServiceProcess:
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(self.port), *self.args],
            cwd=REPO,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited with {self.process.returncode}:\n{self.output()}")
            try:
                if requests.get(f"{self.url}/health/ready", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"service did not become ready:\n{self.output()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout)
        self.log.close()
        return code

    def kill(self, timeout: float = 10) -> None:
        """A crash: SIGKILL gunicorn's master and its workers at once, so nothing drains or cleans up."""
        assert self.process is not None
        tree = [self.process.pid, *_descendants(self.process.pid)]
        for pid in tree:  # the master first, so it cannot start a new worker
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout)
        self.log.close()
        # The workers are not our children: wait until the kernel has ended them
        # (a zombie holds no files), so the data directory is free.
        deadline = time.monotonic() + timeout
        while any(_running(pid) for pid in tree[1:]):
            if time.monotonic() > deadline:
                raise RuntimeError(f"processes {tree[1:]} survived SIGKILL")
            time.sleep(0.01)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _descendants(pid: int) -> list[int]:
    """Child processes of `pid`, recursively, from /proc (Linux)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found += [child, *_descendants(child)]
    return found


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def read_table(data_dir: Path, sql: str) -> list[dict]:
    """Query a stopped service's data directory from a child process (one chdb engine per process)."""
    script = (
        "import json, sys, clickhouse_connect\n"
        "c = clickhouse_connect.get_client(dsn=sys.argv[1])\n"
        "rows = list(c.query(sys.argv[2]).named_results())\n"
        "print(json.dumps(rows, default=str))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, f"chdb://{data_dir}", sql], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(out.stdout.strip().splitlines()[-1])
