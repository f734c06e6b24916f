"""bench.ab's summary (medians per version, candidate over base on each), and its checkouts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench import ab
from bench.ab import Side, parse_args, render
from bench.service import REPO
from ingest import fastmap


def test_the_ratio_is_of_the_medians_of_each_version():
    base = Side("A main", Path("."), {"protobuf": [20_000, 30_000, 22_000]}, {"protobuf": [0.020, 0.030, 0.022]})
    candidate = Side("B working tree", Path("."), {"protobuf": [26_400, 10_000, 30_000]}, {"protobuf": [0.025, 0.010, 0.0275]})
    text = render(base, candidate, parse_args(["main", "--rounds", "3"]))
    assert "| protobuf | A main | 20,000, 30,000, 22,000 | 22,000 | 2.20 % |" in text
    assert "| protobuf | B working tree | 26,400, 10,000, 30,000 | 26,400 | 2.50 % |" in text
    assert "B / A = 1.200 on stored spans/s, 1.136 on stored / raw parse" in text


@pytest.mark.skipif(not fastmap.AVAILABLE, reason="no C compiler where this was installed")
def test_a_checked_out_revision_runs_with_its_compiled_pass(tmp_path):
    tree = ab.checkout("HEAD", tmp_path / "tree")
    try:
        assert list((tree / "ingest").glob("_spanmap*.so")), "the worktree would take the Python path"
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)
