"""`python -m bench.ab BASE [CANDIDATE]`: two versions' ingest throughput, measured in turn.

This machine's speed drifts by 10 to 20 % within minutes, more than most
changes are worth, so two separate runs of `python -m bench` cannot tell a
version that is 5 % faster. This runs the ingest benchmark of both versions
alternately (A B, B A, A B, ...: a drift in either direction hits both alike),
each on its own new embedded ClickHouse, and reports per version the median
stored spans/s and the median of stored / raw parse (the raw protobuf or JSON
parse rate that run measured on the same machine a moment before), and the
ratio of candidate to base on each.

BASE and CANDIDATE are git revisions, checked out as detached worktrees in a
temporary directory; CANDIDATE defaults to this working tree, uncommitted
changes included. Both run with this interpreter and its installed packages.
Analytics latency is left out: it needs generated data per version, which
`python -m bench --sizes ...` on each does better.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench.service import REPO

WORKING_TREE = "working tree"


@dataclass
class Side:
    label: str
    tree: Path
    stored: dict[str, list[float]] = field(default_factory=dict)  # spans/s per encoding, one per round
    of_parse: dict[str, list[float]] = field(default_factory=dict)  # stored / raw parse, one per round


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", help="git revision measured as A")
    parser.add_argument("candidate", nargs="?", default=None, help="git revision measured as B (default: this working tree)")
    parser.add_argument("--rounds", type=int, default=4, help="runs of each version (default 4)")
    parser.add_argument("--encodings", default="protobuf", help="ingest encodings (default protobuf)")
    parser.add_argument("--duration", type=float, default=20, help="measurement window per run, seconds (default 20)")
    parser.add_argument("--warmup", type=float, default=4, help="warm-up per run, seconds (default 4)")
    parser.add_argument("--clients", type=int, default=4, help="client processes (default 4)")
    parser.add_argument("--threads", type=int, default=8, help="connections per client process (default 8)")
    return parser.parse_args(argv)


def checkout(revision: str, into: Path) -> Path:
    """A detached worktree of `revision` (errors name the revision), with its compiled
    extensions built in place: without them a revision would run its Python path."""
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--quiet", "--detach", str(into), revision], check=True)
    if (into / "setup.py").exists():
        subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=into, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return into


def run_once(side: Side, args: argparse.Namespace, workdir: Path, log) -> None:
    """One ingest benchmark of one version; its figures are appended to `side`."""
    workdir.mkdir(parents=True)
    command = [
        sys.executable, "-m", "bench", "--sizes", "", "--encodings", args.encodings,
        "--duration", str(args.duration), "--warmup", str(args.warmup),
        "--clients", str(args.clients), "--threads", str(args.threads),
        "--no-readme", "--workdir", str(workdir),
    ]  # fmt: skip
    # The version's own packages come first: the service child runs `-m app.cli` from the same tree.
    env = os.environ | {"PYTHONPATH": str(side.tree)}
    finished = subprocess.run(command, cwd=side.tree, env=env, capture_output=True, text=True, check=False)
    if finished.returncode != 0:
        raise RuntimeError(f"{side.label}: the benchmark failed ({finished.returncode}):\n{finished.stderr[-2000:]}")
    # Read as plain JSON, not through bench.report: an older revision may have a different Report.
    for result in json.loads((workdir / "results.json").read_text())["ingest"]:
        encoding = result["encoding"]
        stored = result["stored_in_window"] / result["window_seconds"]
        side.stored.setdefault(encoding, []).append(stored)
        side.of_parse.setdefault(encoding, []).append(stored / result["decode_spans_per_second"])
        log(f"{side.label} {encoding}: {stored:,.0f} stored spans/s, raw parse {result['decode_spans_per_second']:,.0f}")


def render(base: Side, candidate: Side, args: argparse.Namespace) -> str:
    lines = [
        (
            f"{args.rounds} rounds, each version in turn (A B, B A, ...), {args.duration:g} s windows, "
            f"{args.clients} clients × {args.threads} connections."
        ),
        "",
        "| Encoding | Version | Stored spans/s per round | Median | Stored / raw parse (median) |",
        "|---|---|---|--:|--:|",
    ]
    for encoding in base.stored:
        for side in (base, candidate):
            rounds = ", ".join(f"{value:,.0f}" for value in side.stored[encoding])
            lines.append(
                f"| {encoding} | {side.label} | {rounds} | {statistics.median(side.stored[encoding]):,.0f} "
                f"| {100 * statistics.median(side.of_parse[encoding]):.2f} % |"
            )
    lines.append("")
    for encoding in base.stored:
        stored = statistics.median(candidate.stored[encoding]) / statistics.median(base.stored[encoding])
        of_parse = statistics.median(candidate.of_parse[encoding]) / statistics.median(base.of_parse[encoding])
        lines.append(f"- {encoding}: B / A = {stored:.3f} on stored spans/s, {of_parse:.3f} on stored / raw parse")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.rounds < 1:
        print("--rounds must be at least 1", file=sys.stderr)
        return 2

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    scratch = Path(tempfile.mkdtemp(prefix="ai-usage-ab-"))
    worktrees: list[Path] = []
    try:
        base = Side(f"A {args.base}", checkout(args.base, scratch / "a"))
        worktrees.append(base.tree)
        if args.candidate is None:
            candidate = Side(f"B {WORKING_TREE}", REPO)
        else:
            candidate = Side(f"B {args.candidate}", checkout(args.candidate, scratch / "b"))
            worktrees.append(candidate.tree)
        for round_number in range(args.rounds):
            order = (base, candidate) if round_number % 2 == 0 else (candidate, base)
            for side in order:
                run_once(side, args, scratch / f"run-{round_number}-{side.label[0]}", log)
    except (subprocess.CalledProcessError, RuntimeError, OSError) as error:
        print(error, file=sys.stderr)
        return 1
    finally:
        for tree in worktrees:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)
        shutil.rmtree(scratch, ignore_errors=True)
    print(render(base, candidate, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
