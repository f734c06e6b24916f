"""Spans from the real OpenTelemetry SDK in, every analytics route (canonical and alias) out, over HTTP.

The expected answers come from tests/api/reference.py, computed from the
records of what this test put on the spans, never from the service's code.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest
import requests
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from tests.api import reference as ref
from tests.api.reference import Sent, ns
from tests.support.otel import Recorder, export, http_exporter
from tests.support.service import InProcessService, service_settings

ANALYTICS = "/umbraco/ai/management/api/v1/analytics"
P1, P2, P3 = "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "7c9e6679-7425-40de-944b-e07fc1f90ae7", "9b2f7a30-0000-4000-8000-0000000000c3"
U1, U2, U3 = "8d9c7a51-0000-4000-8000-00000000beef", "11111111-2222-4333-8444-555555555555", "c0ffee00-0000-4000-8000-000000000003"

# 2025-03-10 is a Monday. Each record is one model call and its final attribution.
SENT: list[Sent] = [
    Sent(ns("2025-03-09T23:59:59.999"), 2_000_000, "openai", "gpt-4o", "", P1, "writer", U1, "Ada", 7, 3),
    Sent(ns("2025-03-10T10:15:00"), 1_234_567_890, "openai", "gpt-4o", "gpt-4o-2024-08-06", P1, "writer", U1, "Ada", 100, 50),
    # Exactly at the start of the mid-bucket range: included (`from` is inclusive).
    Sent(ns("2025-03-10T10:30:00"), 600_000_000, "openai", "gpt-4o", "", P1, "writer", U1, "Ada", 1, 1),
    Sent(ns("2025-03-10T10:45:00.5"), 2_500_000_000, "openai", "gpt-4o", "", P1, "writer-v2", U2, "", 200, 20, total_tokens=250),
    # Near the bucket edge, and a failure (span status ERROR).
    Sent(ns("2025-03-10T10:59:59.999"), 800_000_000, "anthropic", "claude-3-5-sonnet", "", "", "", U1, "Ada Lovelace", 10, 5, succeeded=False),
    Sent(ns("2025-03-10T11:00:00"), 50_000_000, "openai", "text-embedding-3-small", "", "", "", "", "", 42),
    # No provider, no requested model: the model is the response model; error.type makes it a failure.
    Sent(ns("2025-03-10T11:30:00"), 3_000_000_000, "", "", "mistral-large-2407", P2, "", U2, "Bob", 64, 16, succeeded=False),
    Sent(ns("2025-03-10T12:10:00"), 400_000_000, "openai", "", "", P2, "", U2, "Bob", 5, 5),
    # Late context: exported without profile and user; its ancestor brings them in a later export.
    Sent(ns("2025-03-10T13:20:00"), 1_000_000_000, "openai", "gpt-4o-mini", "", P3, "late-profile", U3, "Carol", 30, 10),
    Sent(ns("2025-03-11T09:00:00"), 700_000_000, "openai", "gpt-4o", "", P1, "writer", U2, "Bob", 11, 22),
    # Exactly at the end of the main range: excluded there (`to` is exclusive).
    Sent(ns("2025-03-12T00:00:00"), 1_000_000, "anthropic", "claude-3-5-sonnet", "", "", "", "", "", 1, 1),
]
LATE = SENT[8]

FULL = ("2025-03-10T00:00:00Z", "2025-03-12T00:00:00Z")
DAYS = ("2025-03-09T00:00:00Z", "2025-03-13T00:00:00Z")
# 10:30 UTC written with an offset: the first hourly bucket is 10:00, holding 10:30 onwards only.
MID_BUCKET = ("2025-03-10T11:30:00+01:00", "2025-03-11T00:00:00Z")
MONTH = ("2025-03-01T00:00:00Z", "2025-04-01T00:00:00Z")
RANGES = {"full": FULL, "days": DAYS, "mid-bucket": MID_BUCKET, "month": MONTH}

ROUTES = {
    "summary": ("usage-summary", "summary"),
    "series": ("usage-time-series", "timeseries"),
    "provider": ("usage-by-provider", "breakdown/provider"),
    "model": ("usage-by-model", "breakdown/model"),
    "profile": ("usage-by-profile", "breakdown/profile"),
    "user": ("usage-by-user", "breakdown/user"),
}


def attributes(op: Sent, with_context: bool = True) -> dict:
    found = {"gen_ai.operation.name": "embeddings" if "embedding" in op.request_model else "chat"}
    optional = {
        "gen_ai.provider.name": op.provider,
        "gen_ai.request.model": op.request_model,
        "gen_ai.response.model": op.response_model,
    }
    if with_context:
        optional.update({
            "umbraco.ai.profile.id": op.profile_id,
            "umbraco.ai.profile.alias": op.profile_alias,
            "umbraco.ai.user.id": op.user_id,
            "umbraco.ai.user.name": op.user_name,
        })
    found.update({key: value for key, value in optional.items() if value})
    found["gen_ai.usage.input_tokens"] = op.input_tokens
    found["gen_ai.usage.output_tokens"] = op.output_tokens
    if op.total_tokens is not None:
        found["gen_ai.usage.total_tokens"] = op.total_tokens
    if not op.succeeded and not op.provider:
        found["error.type"] = "server_error"
    return found


def model_call(tracer, op: Sent, context=None, with_context: bool = True) -> None:
    span = tracer.start_span("model call", context=context, start_time=op.start_ns, attributes=attributes(op, with_context))
    if not op.succeeded and op.provider:
        span.set_status(Status(StatusCode.ERROR, "upstream failed"))
    span.end(end_time=op.start_ns + op.duration_ns)


def get(service: InProcessService, path: str, period: tuple[str, str], granularity: str | None = None) -> requests.Response:
    query = f"from={quote(period[0])}&to={quote(period[1])}"
    if granularity:
        query += f"&granularity={granularity}"
    return requests.get(f"{service.url}{ANALYTICS}/{path}?{query}", timeout=10)


def answers(service: InProcessService, route: str, period: tuple[str, str], granularity: str | None = None) -> list:
    """The JSON of the canonical route, checked to equal the alias's."""
    canonical, alias = (get(service, path, period, granularity) for path in ROUTES[route])
    assert canonical.status_code == 200, canonical.text
    assert canonical.headers["Content-Type"].startswith("application/json")
    assert alias.status_code == 200 and alias.text == canonical.text, f"alias {ROUTES[route][1]} differs"
    return canonical.json()


def bounds(period: tuple[str, str]) -> tuple[int, int]:
    return ns(period[0]), ns(period[1])


@pytest.fixture(scope="module")
def exported(chdb_dir) -> Iterator[InProcessService]:
    service = InProcessService(service_settings(chdb_dir))
    exporter = http_exporter(f"{service.url}/v1/traces", "protobuf")
    recorder = Recorder({"service.name": "umbraco-site"})
    tracer = recorder.tracer("Umbraco.AI", "17.1.0")
    for op in SENT:
        if op is not LATE:
            model_call(tracer, op)
    # An agent span repeats the tokens of the calls beneath it: never a request.
    tracer.start_span("invoke_agent writer", start_time=ns("2025-03-10T10:20:00"), attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.usage.input_tokens": 999,
    }).end(end_time=ns("2025-03-10T10:21:00"))
    export(exporter, recorder.take())

    request_span = tracer.start_span("POST /umbraco/management/api/v1/ai/chat", start_time=LATE.start_ns - 5_000_000, attributes={
        "umbraco.ai.profile.id": LATE.profile_id,
        "umbraco.ai.profile.alias": LATE.profile_alias,
        "umbraco.ai.user.id": LATE.user_id,
        "umbraco.ai.user.name": LATE.user_name,
    })
    model_call(tracer, LATE, context=trace.set_span_in_context(request_span), with_context=False)
    export(exporter, recorder.take())
    service.before_correction = {
        route: answers(service, route, FULL) for route in ("profile", "user")
    }
    request_span.end(end_time=LATE.start_ns + LATE.duration_ns + 5_000_000)
    export(exporter, recorder.take())
    yield service
    service.close()


@pytest.mark.parametrize("period", ["full", "mid-bucket", "days"])
def test_summary(exported, period):
    start, end = bounds(RANGES[period])
    assert answers(exported, "summary", RANGES[period]) == ref.summary(SENT, start, end)


@pytest.mark.parametrize(
    ("period", "granularity", "bucket"),
    [
        ("full", None, "hour"),  # 2 days: Hourly by default
        ("full", "Hourly", "hour"),
        ("mid-bucket", "hour", "hour"),
        ("days", "Daily", "day"),
        ("days", "DAY", "day"),
        ("month", None, "day"),  # 31 days: Daily by default
        ("month", "week", "week"),
        ("month", "Monthly", "month"),
    ],
)
def test_time_series(exported, period, granularity, bucket):
    start, end = bounds(RANGES[period])
    expected = ref.time_series(SENT, start, end, bucket)
    assert answers(exported, "series", RANGES[period], granularity) == expected


def test_hourly_series_edges(exported):
    """The literal buckets around 11:00, and the mid-bucket start, spelled out."""
    series = {point["timestamp"]: point for point in answers(exported, "series", MID_BUCKET, "Hourly")}
    assert series["2025-03-10T10:00:00.000Z"]["requestCount"] == 3, "10:30, 10:45 and 10:59:59.999, not 10:15"
    assert series["2025-03-10T10:00:00.000Z"]["failureCount"] == 1
    assert series["2025-03-10T11:00:00.000Z"]["requestCount"] == 2, "11:00:00.000 opens the next bucket"


@pytest.mark.parametrize("period", ["full", "mid-bucket", "days"])
@pytest.mark.parametrize("dimension", ["provider", "model", "profile", "user"])
def test_breakdowns(exported, dimension, period):
    start, end = bounds(RANGES[period])
    assert answers(exported, dimension, RANGES[period]) == ref.breakdown(SENT, start, end, dimension)


def test_breakdowns_show_unknown_labels_null_names_and_percentages(exported):
    providers = {item["dimension"]: item for item in answers(exported, "provider", FULL)}
    assert providers["Unknown Provider"] == {
        "dimension": "Unknown Provider", "dimensionName": None, "percentage": 100 / 9, "requestCount": 1, "totalTokens": 80,
    }
    assert sum(item["percentage"] for item in providers.values()) == pytest.approx(100)
    models = {item["dimension"]: item for item in answers(exported, "model", FULL)}
    assert "mistral-large-2407" in models and "Unknown Model" in models
    profiles = {item["dimension"]: item["dimensionName"] for item in answers(exported, "profile", FULL)}
    assert profiles == {P1: "writer", P2: None, P3: "late-profile", "Unknown Profile": None}, "latest hour's name"
    hour_ten = ("2025-03-10T10:00:00Z", "2025-03-10T11:00:00Z")
    profiles = {item["dimension"]: item["dimensionName"] for item in answers(exported, "profile", hour_ten)}
    assert profiles[P1] == "writer-v2", "two names in one hour: the greatest"
    head = ("2025-03-10T10:00:00Z", "2025-03-10T10:30:00Z")
    assert answers(exported, "profile", head)[0]["dimensionName"] == "writer"
    users = {item["dimension"]: item["dimensionName"] for item in answers(exported, "user", FULL)}
    assert users == {U1: "Ada Lovelace", U2: "Bob", U3: "Carol", "Anonymous": None}


def test_late_context_corrects_profile_and_user_attribution(exported):
    before = {item["dimension"]: item["requestCount"] for item in exported.before_correction["profile"]}
    after = {item["dimension"]: item["requestCount"] for item in answers(exported, "profile", FULL)}
    assert before["Unknown Profile"] == after["Unknown Profile"] + 1
    assert P3 not in before and after[P3] == 1
    users_before = {item["dimension"]: item["requestCount"] for item in exported.before_correction["user"]}
    assert users_before["Anonymous"] == 2 and U3 not in users_before
    # The correction moved the call; it did not add one.
    assert answers(exported, "summary", FULL)["totalRequests"] == sum(before.values())
