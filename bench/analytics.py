"""Analytics latency over HTTP at a given data size.

For each size: `ai-usage generate` writes the operations over `days` days into
a fresh data directory (timed: the generation rate), background merges are let
finish (a live service is past them), the real service starts on it, and one
client times every analytics route sequentially (an idle service answering a
dashboard) for ranges ending now. `from`/`to` are not hour-aligned, so every
query also reads the raw rows at both range edges, the realistic worst case.
"""

from __future__ import annotations

import http.client
import json
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench.service import PeakRss, Service, generate, in_child, settle
from bench.stats import percentile

BASE = "/umbraco/ai/management/api/v1/analytics"
ROUTES: tuple[str, ...] = (
    "usage-summary",
    "usage-time-series",
    "usage-by-provider",
    "usage-by-model",
    "usage-by-profile",
    "usage-by-user",
)
RANGES: tuple[tuple[str, timedelta], ...] = (
    ("24 h", timedelta(hours=24)),
    ("7 d", timedelta(days=7)),
    ("30 d", timedelta(days=30)),
)
WARMUP_REQUESTS = 2


@dataclass
class SizeResult:
    operations: int
    days: int
    generate_seconds: float
    generate_peak_rss: int
    storage: dict[str, int]
    summary_total: int  # totalRequests over the whole generated range, as the API reports it
    peak_rss: int = 0
    # (route, range label) -> (p50 ms, p95 ms, samples)
    latency: dict[tuple[str, str], tuple[float, float, int]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def generate_rate(self) -> float:
        return self.operations / self.generate_seconds if self.generate_seconds else 0.0


def iso(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _get(connection: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
    connection.request("GET", path)
    response = connection.getresponse()
    return response.status, response.read()


def run_size(
    operations: int, *, days: int, requests: int, workdir: Path, keep: bool, settle_seconds: float, log: Any
) -> SizeResult:
    data_dir = workdir / f"analytics-{operations}"
    shutil.rmtree(data_dir, ignore_errors=True)
    log(f"analytics {operations:,}: generating over {days} days")
    seconds, generate_rss = generate(data_dir, operations, days, workdir / f"analytics-{operations}.log")
    log(f"analytics {operations:,}: {operations / seconds:,.0f} rows/s; letting merges finish (at most {settle_seconds:.0f} s)")
    storage = in_child(settle, str(data_dir), settle_seconds)
    result = SizeResult(operations, days, seconds, generate_rss, storage, summary_total=-1)

    service = Service(data_dir, workdir / f"analytics-{operations}.log").start()
    try:
        with PeakRss(lambda: service.pid) as rss:
            connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=600)
            now = datetime.now(UTC)
            whole = urlencode({"from": iso(now - timedelta(days=days + 1)), "to": iso(now + timedelta(hours=1))})
            status, body = _get(connection, f"{BASE}/usage-summary?{whole}")
            if status == 200:
                result.summary_total = int(json.loads(body)["totalRequests"])
            else:
                result.errors.append(f"usage-summary over all data: HTTP {status}: {body[:200]!r}")
            for label, span in RANGES:
                query = urlencode({"from": iso(now - span), "to": iso(now)})
                for route in ROUTES:
                    path = f"{BASE}/{route}?{query}"
                    timings: list[float] = []
                    for i in range(WARMUP_REQUESTS + requests):
                        started = time.perf_counter()
                        status, body = _get(connection, path)
                        elapsed = (time.perf_counter() - started) * 1000
                        if status != 200:
                            result.errors.append(f"{route} {label}: HTTP {status}: {body[:200]!r}")
                            break
                        if i >= WARMUP_REQUESTS:
                            timings.append(elapsed)
                    result.latency[(route, label)] = (percentile(timings, 50), percentile(timings, 95), len(timings))
                log(f"analytics {operations:,}: {label} done")
            connection.close()
        result.peak_rss = rss.peak
    finally:
        service.stop()
        if not keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    return result
