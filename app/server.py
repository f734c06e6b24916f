"""Serving with gunicorn, configured for the process model the storage allows.

Defaults live in app/gunicorn_config.py; `ai-usage serve` flags override them.
The app is built inside the worker (no preload): the master never opens
ClickHouse, so a forked worker never inherits an engine.
"""

from __future__ import annotations

import fcntl
import logging
import os
from dataclasses import dataclass

from gunicorn.app.base import BaseApplication

from app.settings import ConfigError, Settings, is_loopback
from clickhouse.client import Target

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 4318
    role: str = "all"
    workers: int = 1
    threads: int = 32


def check_process_model(settings: Settings, workers: int, host: str, role: str = "all") -> None:
    """Refuse what cannot work (several processes on one chdb engine) or is unsafe
    (an open service on a non-loopback address without an explicit opt-in)."""
    if settings.embedded and workers != 1:
        raise ConfigError(
            "embedded ClickHouse (chdb) allows one process: use --workers 1 (threads scale instead), "
            "or point CLICKHOUSE_URL at a ClickHouse server to run several workers"
        )
    open_surfaces = settings.open_surfaces(role)
    if open_surfaces and not is_loopback(host) and not settings.allow_open:
        raise ConfigError(
            f"refusing to serve {' and '.join(open_surfaces)} without keys on {host}: configure "
            "AI_USAGE_API_KEYS / AI_USAGE_INGEST_KEYS (or their _FILE variants) or AI_USAGE_UMBRACO_URL, bind 127.0.0.1, "
            "or set AI_USAGE_ALLOW_OPEN=true if an open service is really intended"
        )


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


class ServiceApplication(BaseApplication):
    def __init__(self, settings: Settings, options: ServeOptions):
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        from app import gunicorn_config

        for name in dir(gunicorn_config):
            if name in self.cfg.settings:
                self.cfg.set(name, getattr(gunicorn_config, name))
        self.cfg.set("bind", f"{self.options.host}:{self.options.port}")
        self.cfg.set("workers", self.options.workers)
        self.cfg.set("threads", self.options.threads)
        self.cfg.set("proc_name", f"ai-usage-{self.options.role}")
        # The config file's check reads the environment; flags may differ.
        self.cfg.set("on_starting", lambda server: None)

    def load(self):
        from app import create_app

        return create_app(self.settings, role=self.options.role)


def serve(settings: Settings, options: ServeOptions) -> None:
    check_process_model(settings, options.workers, options.host, options.role)
    check_data_directory(settings)
    ServiceApplication(settings, options).run()
