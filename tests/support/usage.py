"""Model calls with known answers, and checks that the analytics API and the audit log count them exactly.

The expected answers come from tests/api/reference.py (written from the
contract), never from the service's code. The ranges read every storage level:
whole days (usage_daily), whole hours (usage_hourly) and partial hours
(operations at the range edges).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from urllib.parse import quote

import requests
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.trace import SpanKind

from tests.api import reference as ref
from tests.api.reference import Sent, stamp
from tests.support.otel import Recorder, ids

API = "/umbraco/ai/management/api/v1"
HOUR_NS = 3_600 * 10**9
DAY_NS = 24 * HOUR_NS
MINUTE_NS = 60 * 10**9
DAY = (time.time_ns() // DAY_NS - 2) * DAY_NS  # 00:00 UTC two days ago: whole, past, within retention
FIRST_CALL = DAY + 10 * HOUR_NS  # calls start at 10:00 and stay before 14:00
# name: (from, to, granularity), named by the table each range reads.
PERIODS = {
    "whole day (usage_daily)": (DAY, DAY + DAY_NS, "Daily"),
    "whole hours (usage_hourly)": (DAY + 10 * HOUR_NS, DAY + 14 * HOUR_NS, "Hourly"),
    "partial hours (operations at the edges)": (DAY + 10 * HOUR_NS + 7 * MINUTE_NS, DAY + 13 * HOUR_NS + 21 * MINUTE_NS, "Hourly"),
}
MODELS = (("openai", "gpt-4o", "chat"), ("anthropic", "claude-sonnet-4", "chat"), ("openai", "text-embedding-3-small", "embeddings"))


@dataclass
class Batch:
    """One export request: SDK spans, and the model calls among them by audit id (trace id + span id)."""

    spans: list
    calls: dict[str, Sent] = field(default_factory=dict)

    @property
    def body(self) -> bytes:
        """The OTLP/protobuf body the SDK's exporter sends for these spans."""
        return encode_spans(self.spans).SerializeToString()


class Calls:
    """Model calls with distinct start times from 10:00 UTC of DAY on, as the OpenTelemetry SDK records them.

    Every other trace is an HTTP request span with two calls beneath it (the
    ingester tracks the trace); the others are one root call (stored directly).
    """

    def __init__(self, step_ns: int):
        self.step_ns = step_ns
        self.counter = itertools.count()
        self.recorder = Recorder({"service.name": "usage-tests"})
        self.tracer = self.recorder.tracer("Microsoft.Extensions.AI", "9.5.0")

    def batch(self, traces: int) -> Batch:
        calls: dict[str, Sent] = {}
        for _ in range(traces):
            n = next(self.counter)
            start = FIRST_CALL + n * 2 * self.step_ns
            assert start + 2 * self.step_ns < DAY + 14 * HOUR_NS, "more calls than the hours hold"
            if n % 2:
                request = self.tracer.start_span("POST /api/chat", kind=SpanKind.SERVER, start_time=start)
                parent = trace.set_span_in_context(request)
                self._call(calls, n, start + 1, parent)
                self._call(calls, n + 1, start + self.step_ns, parent)
                request.end(end_time=start + 2 * self.step_ns - 1)
            else:
                self._call(calls, n, start, None)
        return Batch(self.recorder.take(), calls)

    def _call(self, calls: dict[str, Sent], n: int, start: int, parent) -> None:
        provider, model, operation = MODELS[n % len(MODELS)]
        sent = Sent(
            start_ns=start,
            duration_ns=(n % 9 + 1) * 1_000_000,
            provider=provider,
            request_model=model,
            input_tokens=10 + n % 7,
            output_tokens=0 if operation == "embeddings" else n % 5 + 1,
        )
        span = self.tracer.start_span(f"{operation} {model}", context=parent, kind=SpanKind.CLIENT, start_time=start, attributes={
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
            "gen_ai.usage.input_tokens": sent.input_tokens,
            "gen_ai.usage.output_tokens": sent.output_tokens,
        })
        span.end(end_time=start + sent.duration_ns)
        calls["".join(ids(span))] = sent


def get(service, route: str, **params) -> dict | list:
    """GET an API route of a running service (anything with a `url`) and return its JSON."""
    query = "&".join(f"{key}={quote(str(value))}" for key, value in params.items())
    response = requests.get(f"{service.url}{API}/{route}?{query}", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def live_ids(service) -> list[str]:
    """Every operation the audit log lists (one item per live state), paged."""
    found: list[str] = []
    while True:
        page = get(service, "audit-logs", skip=len(found), take=1000)
        found += [item["id"] for item in page["items"]]
        if len(page["items"]) < 1000:
            assert page["total"] == len(found), "the audit total counts what the list shows"
            return found


def assert_counted_once(service, calls: dict[str, Sent]) -> None:
    """The audit log lists exactly `calls`, each once, and the analytics API counts them at every storage level."""
    stored = live_ids(service)
    assert len(stored) == len(set(stored)), "an operation is stored twice"
    assert set(stored) == set(calls), f"{len(set(calls) - set(stored))} calls missing, {len(set(stored) - set(calls))} unexpected"
    assert_analytics(service, calls)


def assert_analytics(service, calls: dict[str, Sent], dimensions: tuple[str, ...] = ("model",)) -> None:
    """Summary, time series and breakdowns equal what `calls` make, over every range of PERIODS."""
    sent = list(calls.values())
    for name, (start, end, granularity) in PERIODS.items():
        period = {"from": stamp(start), "to": stamp(end), "granularity": granularity}
        assert get(service, "analytics/usage-summary", **period) == ref.summary(sent, start, end), name
        bucket = "day" if granularity == "Daily" else "hour"
        assert get(service, "analytics/usage-time-series", **period) == ref.time_series(sent, start, end, bucket), name
        for dimension in dimensions:
            expected = ref.breakdown(sent, start, end, dimension)
            assert get(service, f"analytics/usage-by-{dimension}", **period) == expected, (name, dimension)
