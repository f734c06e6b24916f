"""gunicorn settings for ai-usage, read from the environment.

`ai-usage serve` loads this file and applies its command-line flags on top.
To run gunicorn directly (e.g. under a process manager that wants to own it):

    gunicorn -c python:app.gunicorn_config 'app:create_app()'

Process model: with embedded ClickHouse (chdb) everything must live in ONE
worker process (chdb allows one engine per process), so scale with threads;
with a ClickHouse server, run several workers (and several machines): every
process is stateless apart from the exports it is writing.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("ai_usage.gunicorn")

bind = f"{os.environ.get('AI_USAGE_HOST', '127.0.0.1')}:{os.environ.get('AI_USAGE_PORT', '4318')}"
workers = int(os.environ.get("AI_USAGE_WORKERS", "1"))
# Threads serve concurrent exports (each waits for its group commit) and API
# queries; chdb and ClickHouse's HTTP client release the GIL while they wait.
worker_class = "gthread"
threads = int(os.environ.get("AI_USAGE_THREADS", "32"))
# A worker that does not check in for this long is restarted. Exports wait at
# most AI_USAGE_EXPORT_TIMEOUT_SECONDS (8 s) and queries are short, so 60 s
# only catches a hung process.
timeout = 60
# On SIGTERM: stop accepting, let running requests finish and the writer
# store every accepted export, for at most this long. Orchestrators should
# wait longer than this before SIGKILL (compose: stop_grace_period).
graceful_timeout = 30
keepalive = 5
# Request limits gunicorn enforces itself, before the app; each answer is a
# problem JSON body (post_worker_init installs app.gunicorn_errors), never
# gunicorn's HTML page.
# - The request line (method, path, query string, version) may be 8190 bytes,
#   the most gunicorn allows short of unlimited (0); the API's longest real
#   queries (audit-log filters) are far shorter. Longer: 414.
limit_request_line = 8190
# - At most 100 header fields, each at most 8190 bytes (a bearer key, cookies,
#   tracing headers fit); more or larger: 431.
limit_request_fields = 100
limit_request_field_size = 8190
# Several instances may share a machine (tests, compose): no shared control socket.
control_socket_disable = True
# Access logs come from the app as structured JSON lines (with request ids,
# app/observability.py); gunicorn's own messages go through the same handler.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("AI_USAGE_LOG_LEVEL", "info").lower()
logger_class = "app.logs.GunicornLogger"
proc_name = f"ai-usage-{os.environ.get('AI_USAGE_ROLE', 'all')}"


def on_starting(server) -> None:
    """Refuse settings that cannot work before any worker starts."""
    from app.server import check_process_model
    from app.settings import Settings

    host = server.cfg.address[0][0] if server.cfg.address and isinstance(server.cfg.address[0], tuple) else "127.0.0.1"
    check_process_model(Settings.from_env(), workers=server.cfg.workers, host=host)


def post_worker_init(worker) -> None:
    """gunicorn's own error answers (414, 431, 400...) as problem JSON instead of HTML;
    a garbage collector tuned for a service that allocates millions of objects a second."""
    from app import gunicorn_errors

    gunicorn_errors.install()
    tune_garbage_collector()


# Python's default collects the youngest objects every 700 allocations and
# everything every 70,000 or so: with the ingest pipeline allocating several
# objects per span and the context resolver holding the last two minutes of
# traces, the full collections (walking every remembered object) stalled the
# writer for a tenth of a second at a time (50,000: about +25 % protobuf
# spans stored per second). The youngest generation is now larger than what
# the exports in flight hold, so it rarely fills: the parsed OTLP/JSON bodies
# (dozens of objects per span) are freed by reference counting before any
# collection scans them. Timed with gc.callbacks under `python -m bench`'s
# JSON load: 4.3-4.8 s of collections in 26-30 s of the worker's CPU at
# 50,000, 0-0.5 s at 1,000,000 (one collection of about 0.4 s, or none).
GC_THRESHOLDS = (1_000_000, 20, 10)


def tune_garbage_collector() -> None:
    import gc

    gc.freeze()  # what start-up built (modules, the app, the engine) is never garbage
    gc.set_threshold(*GC_THRESHOLDS)


def worker_exit(server, worker) -> None:
    """Store every export this worker accepted before it goes."""
    app = getattr(worker, "wsgi", None)
    runtime = getattr(app, "extensions", {}).get("ai_usage") if app is not None else None
    if runtime is not None:
        drained = runtime.close()
        log.info("worker stopped; accepted exports %s", "all stored" if drained else "NOT all stored")


# The multiprocess metrics directory this master created (removed at exit).
_metrics_dir: str | None = None


def when_ready(server) -> None:
    """Before the first worker forks: every worker writes its metrics to one directory."""
    from app import multiprocess

    global _metrics_dir
    _metrics_dir = multiprocess.prepare()


def child_exit(server, worker) -> None:
    from app import multiprocess

    multiprocess.process_dead(worker.pid)


def on_exit(server) -> None:
    from app import multiprocess

    multiprocess.remove(_metrics_dir)
