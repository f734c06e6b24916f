"""The benchmark report: markdown tables, the machine, and the README block between the markers."""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path

from bench.analytics import RANGES, ROUTES, SizeResult
from bench.ingest import PROFILE_RATE, IngestResult
from bench.profile import Profile
from bench.service import REPO

START_MARKER = "<!-- bench:start -->"
END_MARKER = "<!-- bench:end -->"

# The ingest targets and analytics targets (at 100 M operations over 90 days) from the performance issue.
INGEST_TARGETS = {"protobuf": 100_000, "json": 50_000}
LATENCY_TARGETS_MS = {"24 h": 30, "30 d": 100}


@dataclass
class Report:
    command: str
    started: datetime
    ingest: list[IngestResult] = field(default_factory=list)
    sizes: list[SizeResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was not measured, and why
    clients: int = 0
    threads: int = 0
    commit: str = ""  # the code measured
    duration_minutes: float = 0.0
    profiles: dict[str, Profile] = field(default_factory=dict)  # by encoding, when --profile was given


def machine() -> str:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "")
    except OSError:
        pass
    memory = 0
    try:
        with open("/proc/meminfo") as handle:
            memory = next(int(line.split()[1]) * 1024 for line in handle if line.startswith("MemTotal:"))
    except (OSError, StopIteration):
        pass
    versions = ", ".join(f"{name} {_version(name)}" for name in ("chdb", "protobuf", "gunicorn"))
    return (
        f"{os.cpu_count()} cores ({cpu or platform.machine()}), {memory / 2**30:.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, {versions}"
    )


def commit() -> str:
    """The commit measured, marked when the service's code has uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "app", "ingest", "clickhouse"], cwd=REPO, capture_output=True, text=True
        )
    except (OSError, subprocess.CalledProcessError):
        return ""
    return f"commit {head.stdout.strip()}" + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "?"


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _size(value: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20)):
        if value >= scale:
            return f"{value / scale:,.1f} {unit}"
    return f"{value / 1024:,.0f} KiB"


def _inserts(result: IngestResult) -> str:
    if not result.inserts_in_window:
        return "-"
    return f"{result.inserts_in_window:,} × {result.stored_in_window / result.inserts_in_window:,.0f}"


def _cores(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.2f} cores"


def _operations(n: int) -> str:
    for suffix, scale in (("M", 10**6), ("k", 10**3)):
        if n >= scale and n % scale == 0:
            return f"{n // scale:,} {suffix}"
    return f"{n:,}"


def render(report: Report) -> str:
    out = [
        f"Measured {report.started:%Y-%m-%d %H:%M} UTC{' at ' + report.commit if report.commit else ''} "
        f"on {machine()}, with:",
        "",
        "```sh",
        report.command,
        "```",
        "",
    ]
    if report.ingest:
        out += _ingest_table(report)
    if report.sizes:
        out += _latency_table(report)
        out += _generation_table(report)
    if report.notes:
        out += ["Not measured in this run:", ""] + [f"- {note}" for note in report.notes] + [""]
    out += [limits(report), "", f"The whole run took {report.duration_minutes:.0f} minutes.", ""]
    return "\n".join(out)


def _ingest_table(report: Report) -> list[str]:
    out = [
        "### Ingest, end to end (OTLP/HTTP, 512 chat spans per request)",
        "",
        f"{report.clients} client processes × {report.threads} keep-alive connections POST pre-built bodies "
        "(fresh trace and span ids on every request) to `ai-usage serve` (defaults, embedded ClickHouse). "
        "*Stored/s* counts rows written to `operations` during the measurement window, read back after the "
        "service stopped. *Raw parse* is `ExportTraceServiceRequest.FromString` or `json.loads` of the same "
        "bodies in a loop on one core; *decode + map* is the service's own decoding and mapping of the same bodies "
        "on one core (the compiled pass for protobuf, `ingest.fastmap`; `codec.decode` and `map_records` for JSON). "
        "*Inserts* are the writer's group commits in the window (distinct `received_at`) and their average size. "
        "The load generator shares the machine with the service: its CPU use is shown.",
        "",
        "| Encoding | Stored spans/s | Target | Raw parse spans/s | Stored / raw | Decode + map spans/s | Export p50 / p95 | "
        "Inserts: count × spans | Service CPU | Clients CPU | Service peak RSS | Requests (503) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in report.ingest:
        out.append(
            f"| {r.encoding} | **{_count(r.stored_per_second)}** | {_count(INGEST_TARGETS.get(r.encoding, 0))} "
            f"| {_count(r.decode_spans_per_second)} | {100 * r.ratio:.2f} % | {_count(r.decode_map_spans_per_second)} "
            f"| {r.latency_p50_ms:,.0f} / {r.latency_p95_ms:,.0f} ms "
            f"| {_inserts(r)} | {_cores(r.service_cores)} "
            f"| {_cores(r.client_cores)} | {_size(r.peak_rss)} | {r.requests:,} ({r.retry_answers:,}) |"
        )
    problems = [
        f"{r.encoding}: {r.errors} failed requests ({r.first_error}), {r.rejected_spans} spans rejected"
        for r in report.ingest
        if r.errors or r.rejected_spans
    ]
    lost = [
        f"{r.encoding}: {r.acknowledged_spans:,} spans acknowledged but {r.stored_total:,} stored"
        for r in report.ingest
        if r.stored_total < r.acknowledged_spans
    ]
    out.append("")
    if problems or lost:
        out += [f"- {line}" for line in problems + lost] + [""]
    else:
        out += [
            "Every acknowledged span was stored (" + ", ".join(
                f"{r.encoding}: {r.stored_total:,} stored, {r.window_seconds:.0f} s window" for r in report.ingest
            ) + ").",
            "",
        ]
    return out


def _latency_table(report: Report) -> list[str]:
    labels = [label for label, _ in RANGES]
    out = [
        "### Analytics latency over HTTP (p50 / p95 in ms)",
        "",
        "Data from `ai-usage generate` over 90 days; one client, sequential requests to an otherwise idle "
        f"service; ranges end now and are not hour-aligned. Targets at 100 M operations: p95 < "
        f"{LATENCY_TARGETS_MS['24 h']} ms for 24 h, < {LATENCY_TARGETS_MS['30 d']} ms for 30 days.",
        "",
        "| Operations | Route | " + " | ".join(labels) + " |",
        "|---|---|" + "--:|" * len(labels),
    ]
    for size in report.sizes:
        for route in ROUTES:
            cells = []
            for label in labels:
                p50, p95, n = size.latency.get((route, label), (0.0, 0.0, 0))
                cells.append(f"{p50:,.1f} / {p95:,.1f}" if n else "-")
            out.append(f"| {_operations(size.operations)} | {route} | " + " | ".join(cells) + " |")
    out.append("")
    for size in report.sizes:
        if size.summary_total != size.operations:
            out.append(f"- {_operations(size.operations)}: usage-summary over all data reported {size.summary_total:,} operations")
        out += [f"- {_operations(size.operations)}: {error}" for error in size.errors[:5]]
    if out[-1] != "":
        out.append("")
    return out


def _generation_table(report: Report) -> list[str]:
    out = [
        "### Synthetic data and storage",
        "",
        "| Operations | `ai-usage generate` | Rows/s | Disk: operations + usage_hourly | usage_hourly rows | "
        "Parts after merges | Peak RSS: generate / serve |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for size in report.sizes:
        storage = size.storage
        disk = storage.get("operations_bytes", 0) + storage.get("usage_hourly_bytes", 0)
        parts = f"{storage.get('operations_parts', 0)} + {storage.get('usage_hourly_parts', 0)}"
        if storage.get("merging"):
            parts += " (still merging)"
        out.append(
            f"| {_operations(size.operations)} | {size.generate_seconds:,.0f} s | {_count(size.generate_rate)} "
            f"| {_size(disk)} ({_size(storage.get('operations_bytes', 0))} + {_size(storage.get('usage_hourly_bytes', 0))}) "
            f"| {storage.get('usage_hourly_rows', 0):,} | {parts} "
            f"| {_size(size.generate_peak_rss)} / {_size(size.peak_rss)} |"
        )
    out.append("")
    return out


def write_readme(path: Path, block: str) -> None:
    """Replace what is between the bench markers, and nothing else."""
    text = path.read_text()
    start, end = text.find(START_MARKER), text.find(END_MARKER)
    if start < 0 or end < start:
        raise ValueError(f"{path} has no {START_MARKER} ... {END_MARKER} block")
    head = text[: start + len(START_MARKER)]
    path.write_text(f"{head}\n{block.strip()}\n{text[end:]}")


def limits(report: Report) -> str:
    """One paragraph on what limits each figure, with this run's numbers in it."""
    cores = os.cpu_count() or 1
    parts = ["**What limits each figure.**"]
    by_encoding = {r.encoding: r for r in report.ingest}
    protobuf, json_result = by_encoding.get("protobuf"), by_encoding.get("json")
    if protobuf is not None:
        text = (
            f"*Ingest:* the service is one Python process (embedded ClickHouse allows one engine per process), so "
            f"receiving, decoding, mapping, context resolution and preparing each insert share one interpreter lock: "
            f"it used {_cores(protobuf.service_cores)} of {cores} while storing {_count(protobuf.stored_per_second)} "
            f"protobuf spans/s, {100 * protobuf.ratio:.1f} % of what `FromString` alone parses on one core, and its "
            f"own decoding and mapping (the compiled pass) manages {_count(protobuf.decode_map_spans_per_second)} "
            f"spans/s by itself; the load generator used {_cores(protobuf.client_cores)}, so it is not the limit."
        )
        if protobuf.inserts_in_window:
            text += (
                f" The writer thread stored the window's rows in {protobuf.inserts_in_window} inserts of about "
                f"{protobuf.stored_in_window / protobuf.inserts_in_window:,.0f} spans, one every "
                f"{protobuf.window_seconds / protobuf.inserts_in_window:.1f} s: each group commit (duplicate look-up, "
                "context resolution, then building and sending the insert) is the serial step every export waits for; "
                "the writer decides the next group while an insert thread stores the current one, request threads "
                "decode and map the exports after them (the compiled pass also writes the rows of the calls in its "
                "plain subset), and ClickHouse's share of each insert (reading those rows, the mapping view for any "
                "other call, both rollups) runs without the lock."
            )
        profile = report.profiles.get("protobuf")
        if profile is not None and profile.samples:
            top = ", ".join(f"`{name.split(' (')[0]}` {100 * n / profile.samples:.0f} %" for name, n in profile.self_counts[:5])
            held = profile.samples / (PROFILE_RATE * int(protobuf.window_seconds)) if protobuf.window_seconds >= 1 else 0
            text += (
                f" py-spy `--gil` found the lock held in {100 * min(1.0, held):.0f} % of its samples; "
                f"the leaf frames holding it most: {top} (time holding the lock, not CPU: a holder waiting for "
                "memory or for a core still holds it)."
            )
        parts.append(text)
    if json_result is not None:
        parse_rate, decode_map_rate = json_result.decode_spans_per_second, json_result.decode_map_spans_per_second
        target = INGEST_TARGETS["json"]
        text = (
            f"For JSON, the standard library's `json.loads` alone parses {_count(parse_rate)} spans/s of OTLP/JSON "
            f"on one core here and the service's own decoding and mapping (one typed msgspec pass for a body in the "
            f"form exporters write, then span records, then `map_records`) {_count(decode_map_rate)}; "
        )
        if decode_map_rate < target:
            text += (
                f"below the {_count(target)} target before any other work is done, so a faster decode or more "
                "processes (a ClickHouse server) is the way past it."
            )
        else:
            text += (
                f"at the {_count(target)} target decoding and mapping would take {100 * target / decode_map_rate:.0f} % of the one "
                "core the interpreter lock allows, so the limit is the per-span Python after it, as for protobuf; "
                "more processes (a ClickHouse server) are the way past it."
            )
        parts.append(text)
    if report.sizes:
        top = max(report.sizes, key=lambda s: s.operations)
        worst = max(top.latency.items(), key=lambda item: item[1][1], default=None)
        text = (
            "*Analytics:* each query reads `usage_daily` for the days of the range, `usage_hourly` for the "
            f"hours around them (one row per hour and key, {top.storage.get('usage_hourly_rows', 0):,} rows at "
            f"{_operations(top.operations)} operations, most of them users), and the raw `operations` rows of the "
            "partial hours at the edges, each range added or subtracted so that raw rows are at most half an hour "
            "per edge (a range ending now subtracts the empty rest of its hour); planning costs a few milliseconds "
            "per table in embedded ClickHouse before a row is read, most of a 24-hour query. The "
            "cost then grows with the keys per hour: the by-user breakdown reads and returns the most groups (every "
            "synthetic user is active every day, each one a JSON item, which ClickHouse writes itself)."
        )
        if worst is not None:
            (route, label), (_, p95, _) = worst
            text += f" Slowest at {_operations(top.operations)}: {route} over {label}, p95 {p95:,.0f} ms."
        parts.append(text)
        operations_bytes = top.storage.get("operations_bytes", 0) / max(1, top.operations)
        parts.append(
            f"*Generation:* ClickHouse's insert path on {cores} cores: sorting and compressing the rows and the "
            "materialized view's ARRAY JOIN and GROUP BY on every block, which costs most per row when operations per "
            "hour are few (the smallest size), while at the largest the background merges of the growing table "
            f"share the same cores. *Disk:* {operations_bytes:.0f} bytes per operation in `operations` at "
            f"{_operations(top.operations)} once merged; ClickHouse recompresses large merged parts with ZSTD, so "
            "freshly inserted (LZ4) parts take about twice that; the random hex trace, span and parent ids are about half of it."
        )
    serving = [s.peak_rss for s in report.sizes if s.peak_rss]
    ingesting = [r.peak_rss for r in report.ingest if r.peak_rss]
    if serving and ingesting:
        parts.append(
            f"*Memory:* answering analytics queries the service stays within {_size(max(serving))} (interpreter, "
            f"embedded engine and its caches); under ingest it reaches {_size(max(ingesting))}, holding the spans in "
            "flight and the traces the context resolver remembers for its window (120 s by default)."
        )
    return " ".join(parts)


# --- results on disk, so a report can be rendered again without measuring ---


def save(report: Report, path: Path) -> None:
    document = {
        "command": report.command,
        "started": report.started.isoformat(),
        "clients": report.clients,
        "threads": report.threads,
        "commit": report.commit,
        "notes": report.notes,
        "duration_minutes": report.duration_minutes,
        "ingest": [asdict(r) for r in report.ingest],
        "sizes": [
            asdict(s) | {"latency": [[route, label, *values] for (route, label), values in s.latency.items()]}
            for s in report.sizes
        ],
        "profiles": {k: asdict(p) for k, p in report.profiles.items()},
    }
    path.write_text(json.dumps(document, indent=1))


def load(path: Path) -> Report:
    document = json.loads(path.read_text())
    sizes = []
    for item in document["sizes"]:
        latency = {(route, label): tuple(values) for route, label, *values in item.pop("latency")}
        sizes.append(SizeResult(**item, latency=latency))  # type: ignore[arg-type]
    return Report(
        command=document["command"],
        started=datetime.fromisoformat(document["started"]),
        ingest=[IngestResult(**r) for r in document["ingest"]],
        sizes=sizes,
        notes=document["notes"],
        clients=document["clients"],
        threads=document["threads"],
        commit=document.get("commit", ""),
        duration_minutes=document["duration_minutes"],
        profiles={
            k: Profile(p["samples"], [tuple(x) for x in p["self_counts"]], [tuple(x) for x in p["total_counts"]])
            for k, p in document["profiles"].items()
        },
    )
