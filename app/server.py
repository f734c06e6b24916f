"""Serving with gunicorn, configured for the process model the storage allows.

Embedded ClickHouse (chdb) hosts one engine per process, so in embedded mode
everything runs in ONE gunicorn worker process with many threads (the
receiver, the writer thread, the analytics API, the gRPC server). With a
ClickHouse server every process is stateless apart from in-flight batches,
so several workers (and several machines) can serve the same database.

The app is built inside the worker (no preload): the master never opens
ClickHouse, so a forked worker never inherits an engine.
"""

from __future__ import annotations

import fcntl
import logging
import os
from dataclasses import dataclass
from typing import Any

from gunicorn.app.base import BaseApplication

from app.settings import ConfigError, Settings
from clickhouse.client import Target

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 4318
    role: str = "all"
    workers: int = 1
    threads: int = 32
    # gthread workers notify the master at least this often; a worker silent
    # for longer is restarted.
    timeout: int = 60
    # On SIGTERM: stop accepting, let in-flight exports finish and the writer
    # drain its queue, for at most this long (compose's stop_grace_period is longer).
    graceful_timeout: int = 30


def gunicorn_options(settings: Settings, options: ServeOptions) -> dict[str, Any]:
    if settings.embedded and options.workers != 1:
        raise ConfigError(
            "embedded ClickHouse (chdb) allows one process: use --workers 1 (threads scale instead), "
            "or point CLICKHOUSE_URL at a ClickHouse server to run several workers"
        )
    return {
        "bind": f"{options.host}:{options.port}",
        "workers": options.workers,
        "worker_class": "gthread",
        "threads": options.threads,
        "timeout": options.timeout,
        "graceful_timeout": options.graceful_timeout,
        "keepalive": 5,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "proc_name": f"ai-usage-{options.role}",
        # Several instances share a machine (tests, compose): no shared control socket.
        "control_socket_disable": True,
        "worker_exit": _worker_exit,
    }


def check_data_directory(settings: Settings) -> None:
    """Fail early, with a clear message, when another process holds the embedded engine."""
    if not settings.embedded:
        return
    path = Target.parse(settings.clickhouse_url).path
    status = os.path.join(path, "status")
    if not os.path.exists(status):
        return
    with open(status, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConfigError(
                f"the embedded ClickHouse data directory {path} is in use by another process; "
                "stop it first (chdb allows one process per data directory)"
            ) from None
        fcntl.flock(handle, fcntl.LOCK_UN)


def _worker_exit(server: Any, worker: Any) -> None:
    app = getattr(worker, "wsgi", None)
    runtime = getattr(app, "extensions", {}).get("ai_usage") if app is not None else None
    if runtime is not None:
        drained = runtime.close()
        log.info("worker stopped; accepted exports %s", "all stored" if drained else "NOT all stored")


class ServiceApplication(BaseApplication):
    def __init__(self, settings: Settings, options: ServeOptions):
        self.settings = settings
        self.options = options
        self._gunicorn_options = gunicorn_options(settings, options)
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._gunicorn_options.items():
            self.cfg.set(key, value)

    def load(self):
        from app import create_app

        return create_app(self.settings, role=self.options.role)


def serve(settings: Settings, options: ServeOptions) -> None:
    check_data_directory(settings)
    ServiceApplication(settings, options).run()
