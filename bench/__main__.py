"""`python -m bench`: ingest throughput and analytics latency of the real service, one command.

Phases, each against `ai-usage serve` in a child process on embedded ClickHouse:
1. ingest, per encoding (protobuf, JSON): client processes POST OTLP/HTTP
   bodies for a fixed duration (or span count); stored spans/s vs raw decode.
2. analytics, per size: `ai-usage generate` then p50/p95 of every route for
   24 h, 7 d and 30 d ranges ending now.
Peak RSS of the service (with its children) is sampled from /proc in each.
The table is printed and written into README.md between the bench markers.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.analytics import run_size
from bench.ingest import run_ingest
from bench.profile import render as render_profile
from bench.profile import summarise
from bench.report import Report, commit, load, render, save, write_readme
from bench.service import REPO

# Bytes per generated operation on disk (operations + usage_hourly), measured
# at 10 M rows (157 B), with headroom: used to refuse sizes the disk cannot hold.
BYTES_PER_OPERATION = 200


def _sizes(text: str) -> list[int]:
    return [int(float(item)) for item in text.split(",") if item.strip()]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encodings", default="protobuf,json", help="ingest encodings to measure (default protobuf,json; '' skips ingest)")
    parser.add_argument("--duration", type=float, default=30, help="ingest measurement window per encoding, seconds (default 30)")
    parser.add_argument("--warmup", type=float, default=5, help="ingest warm-up before the window, seconds (default 5)")
    parser.add_argument("--spans", type=float, default=None, help="send this many spans per encoding instead of a duration")
    parser.add_argument("--clients", type=int, default=4, help="client processes (default 4)")
    parser.add_argument("--threads", type=int, default=8, help="connections per client process (default 8)")
    parser.add_argument("--sizes", default="1e6,1e7,1e8", help="analytics data sizes in operations (default 1e6,1e7,1e8; '' skips)")
    parser.add_argument("--days", type=int, default=90, help="days the generated operations span (default 90)")
    parser.add_argument("--requests", type=int, default=40, help="timed requests per route and range (default 40)")
    parser.add_argument("--settle", type=float, default=900, help="longest wait for merges after generating, seconds (default 900)")
    parser.add_argument("--workdir", type=Path, default=None, help="where data directories go (default: a new temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the data directories")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy the service during ingest; raw profiles go here")
    parser.add_argument("--readme", type=Path, default=REPO / "README.md", help="README to update (default the repo's)")
    parser.add_argument("--no-readme", action="store_true", help="print only")
    parser.add_argument("--render", type=Path, default=None, metavar="RESULTS_JSON",
                        help="measure nothing: render a saved results.json (the README gets its original command)")
    return parser.parse_args(argv)


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.render is not None:
        return _publish(load(args.render), args)
    encodings = [e.strip() for e in args.encodings.split(",") if e.strip()]
    sizes = _sizes(args.sizes)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ai-usage-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
        if shutil.which("py-spy") is None:
            print("--profile needs py-spy on PATH (pip install py-spy)", file=sys.stderr)
            return 2
    report = Report(
        command=shlex.join(["python", "-m", "bench", *argv]),
        started=datetime.now(UTC),
        clients=args.clients,
        threads=args.threads,
        commit=commit(),
    )
    began = time.monotonic()

    for encoding in encodings:
        result = run_ingest(
            encoding,
            clients=args.clients,
            threads=args.threads,
            duration=args.duration,
            warmup=args.warmup,
            spans=None if args.spans is None else int(args.spans),
            workdir=workdir,
            keep=args.keep,
            profile_dir=args.profile,
            log=log,
        )
        report.ingest.append(result)
        log(f"ingest {encoding}: {result.stored_per_second:,.0f} stored spans/s, raw parse {result.decode_spans_per_second:,.0f} spans/s")
        if result.profile and Path(result.profile).exists():
            report.profiles[encoding] = summarise(Path(result.profile))

    for operations in sizes:
        free = shutil.disk_usage(workdir).free
        if operations * BYTES_PER_OPERATION > free * 0.8:
            report.notes.append(
                f"{operations:,} operations: about {operations * BYTES_PER_OPERATION / 2**30:.0f} GiB needed, "
                f"{free / 2**30:.0f} GiB free in {workdir}"
            )
            continue
        try:
            report.sizes.append(
                run_size(operations, days=args.days, requests=args.requests, workdir=workdir, keep=args.keep,
                         settle_seconds=args.settle, log=log)
            )
        except Exception as error:  # noqa: BLE001 - report what failed, keep the sizes measured so far
            log(f"analytics {operations:,}: failed: {error}")
            report.notes.append(f"{operations:,} operations: failed ({error})")

    report.duration_minutes = (time.monotonic() - began) / 60
    # Kept even in a temporary workdir (the data directories are removed): `--render` reads it.
    save(report, workdir / "results.json")
    log(f"results saved in {workdir / 'results.json'} (service logs alongside)")
    return _publish(report, args)


def _publish(report: Report, args: argparse.Namespace) -> int:
    block = render(report)
    print(block)
    for encoding, profile in report.profiles.items():
        print(render_profile(profile, f"service profile, {encoding} ingest (py-spy --gil)"))
    if not args.no_readme:
        write_readme(args.readme, block)
        log(f"wrote the results into {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
