"""The serving worker's garbage-collector settings (app/gunicorn_config.py)."""

from __future__ import annotations

import ast
import subprocess
import sys

from app import gunicorn_config


def test_a_worker_freezes_start_up_objects_and_collects_less_often():
    # In a child interpreter: freezing is for the rest of the process's life.
    script = (
        "import gc\n"
        "from app import gunicorn_config\n"
        "before = gc.get_threshold()\n"
        "gunicorn_config.tune_garbage_collector()\n"
        "print(repr((before, gc.get_threshold(), gc.get_freeze_count() > 0)))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    before, after, frozen = ast.literal_eval(out)
    assert before != gunicorn_config.GC_THRESHOLDS  # the default, which the worker must not keep
    assert after == gunicorn_config.GC_THRESHOLDS
    assert frozen


def test_post_worker_init_tunes_the_collector(monkeypatch):
    calls = []
    monkeypatch.setattr(gunicorn_config, "tune_garbage_collector", lambda: calls.append("tuned"))
    monkeypatch.setattr("app.gunicorn_errors.install", lambda: calls.append("errors"))
    gunicorn_config.post_worker_init(worker=None)
    assert calls == ["errors", "tuned"]
