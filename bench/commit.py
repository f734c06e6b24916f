"""`python -m bench.commit`: what the writer's group commit costs, by group size.

The group commit is the serial step of ingest: every export waits for it. This
runs the real IngestService and OperationStore in this process on a new
embedded ClickHouse, maps protobuf exports like the ingest benchmark's
(`bench.payloads`), and commits groups of 1 to 32 exports of 512 spans. It
times the store's ClickHouse calls (duplicate look-up, insert) apart from the
writer's Python decisions, and fits a line through each over the group sizes:
a fixed cost per commit and a cost per span. The fixed part is what grouping
exports saves; the per-span part is what no grouping can.

Nothing else runs: there is no HTTP and no request threads, so these are the
writer's costs alone, lower than the same work costs beside a full load. The
garbage collector is tuned as in the service's worker.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from statistics import linear_regression

from bench.payloads import PROTOBUF, IdSource, build_templates, fresh_body
from bench.stats import percentile

STORE_CALLS = ("lookup", "in_traces", "stage", "correct")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.commit", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", default="1,4,16,32", help="exports per group commit (default 1,4,16,32)")
    parser.add_argument("--repeats", type=int, default=5, help="commits per group size; the median commit is shown (default 5)")
    parser.add_argument("--workdir", type=Path, default=None, help="where the data directory goes (default: a new temp dir)")
    return parser.parse_args(argv)


class TimedStore:
    """The store with its ClickHouse calls timed (seconds, summed per call name)."""

    def __init__(self, store):
        self._store = store
        self.seconds = dict.fromkeys(STORE_CALLS, 0.0)

    def __getattr__(self, name: str):
        method = getattr(self._store, name)
        if name not in self.seconds:
            return method

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started

        return timed


def run(groups: list[int], repeats: int, data_dir: Path, log: Callable[[str], None]) -> list[dict[str, float]]:
    # Imported here: the service's modules open nothing at import, but keep
    # `--help` independent of them.
    from app.gunicorn_config import tune_garbage_collector
    from clickhouse.client import Database
    from clickhouse.migrate import migrate
    from clickhouse.operations import OperationStore
    from ingest import codec
    from ingest.config import IngestConfig
    from ingest.pipeline import IngestService

    database = Database(f"chdb://{data_dir}")
    database.ensure_database()
    migrate(database.client(), 0)
    config = IngestConfig()
    store = TimedStore(OperationStore(database, config.context_keys.all_keys()))
    service = IngestService(config, store)
    templates = build_templates(seed=7, count=3)[PROTOBUF]
    ids = IdSource(run_tag=int(time.time()), client=1)
    tune_garbage_collector()  # as in the service's worker

    def exports(count: int):
        # Decoded and mapped as the service does: the compiled pass where it is built.
        return [service.receive(fresh_body(templates[i % len(templates)], ids), codec.PROTOBUF).mapped for i in range(count)]

    rows = []
    for group in groups:
        samples: list[dict[str, float]] = []
        for _ in range(repeats):
            batch = exports(group)
            store.seconds = dict.fromkeys(STORE_CALLS, 0.0)
            started = time.perf_counter()
            service._commit(batch)
            total = time.perf_counter() - started
            spans = sum(len(export.candidates) for export in batch)
            clickhouse = sum(store.seconds.values())
            samples.append({
                "spans": spans,
                "total_ms": total * 1e3,
                "lookup_ms": (store.seconds["lookup"] + store.seconds["in_traces"]) * 1e3,
                "insert_ms": (store.seconds["stage"] + store.seconds["correct"]) * 1e3,
                "python_ms": (total - clickhouse) * 1e3,
            })
        # The commit of median time, so that its parts add up.
        median = percentile([sample["total_ms"] for sample in samples], 50)
        row = next(sample for sample in samples if sample["total_ms"] == median)
        log(f"{group} exports: {row['spans']:.0f} spans, {row['total_ms']:.0f} ms")
        rows.append(row)
    database.close()
    return rows


def render(rows: list[dict[str, float]]) -> str:
    lines = [
        "| Spans per commit | Commit, ms | Look-up, ms | Insert, ms | Python, ms | µs per span |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['spans']:,.0f} | {row['total_ms']:,.1f} | {row['lookup_ms']:,.1f} | {row['insert_ms']:,.1f} "
            f"| {row['python_ms']:,.1f} | {row['total_ms'] * 1e3 / row['spans']:,.1f} |"
        )
    if len({row['spans'] for row in rows}) > 1:  # a line needs two group sizes
        lines.append("")
        for label, key in (("look-up", "lookup_ms"), ("insert", "insert_ms"), ("Python", "python_ms")):
            per_span, fixed = linear_regression([row["spans"] for row in rows], [row[key] for row in rows])
            lines.append(f"- {label}: {fixed:,.1f} ms per commit + {per_span * 1e3:,.1f} µs per span")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    groups = [int(item) for item in args.groups.split(",") if item.strip()]
    if not groups or min(groups) < 1:
        print("--groups needs positive export counts", file=sys.stderr)
        return 2
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ai-usage-commit-"))
    data_dir = workdir / "data"
    try:
        rows = run(groups, args.repeats, data_dir, lambda message: print(message, file=sys.stderr, flush=True))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    print(render(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
