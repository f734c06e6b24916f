"""The directory of prometheus_client's multiprocess mode, managed by the gunicorn master.

Every gunicorn worker writes its metric values to files in
PROMETHEUS_MULTIPROC_DIR; a scrape of any worker sums the files of all of them,
including workers that were restarted, so counters never go backwards while
the service runs. The master prepares the directory before it forks the first
worker (the variable is inherited), tells prometheus_client when a worker
exits, and removes a directory it created when it stops.

prometheus_client decides on multiprocess mode when it is first imported, from
this variable: nothing here imports it at module level, and the master never
imports app.metrics.
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import tempfile

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare() -> str | None:
    """Point PROMETHEUS_MULTIPROC_DIR at an empty directory; return it when created here (to remove at exit)."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        # Files of an earlier run would be summed into this run's counters.
        os.makedirs(path, exist_ok=True)
        for stale in glob.glob(os.path.join(path, "*.db")):
            os.remove(stale)
        log.info("metrics: multiprocess directory %s (emptied)", path)
        return None
    created = tempfile.mkdtemp(prefix="ai-usage-metrics-")
    os.environ[MULTIPROC_ENV] = created
    log.info("metrics: multiprocess directory %s (created for this run)", created)
    return created


def process_dead(pid: int) -> None:
    """A worker exited: its live gauges stop counting (its counters stay in the sums)."""
    if not os.environ.get(MULTIPROC_ENV):
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)


def remove(created: str | None) -> None:
    if created:
        shutil.rmtree(created, ignore_errors=True)
