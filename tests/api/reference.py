"""What the analytics API must answer, computed from plain records of what a test sent.

Written from the contract alone (docs in shared/contract/analytics-api.md),
with no code of the service: the tests compare the service's answers with these.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

HOUR_NS = 3_600 * 10**9
UNKNOWN = {"provider": "Unknown Provider", "model": "Unknown Model", "profile": "Unknown Profile", "user": "Anonymous"}


@dataclass(frozen=True)
class Sent:
    """One model call as the test sent it, with the attribution it must end up with."""

    start_ns: int
    duration_ns: int = 1_000_000
    provider: str = ""
    request_model: str = ""
    response_model: str = ""
    profile_id: str = ""
    profile_alias: str = ""
    user_id: str = ""
    user_name: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int | None = None  # the emitter's total, when it sends one
    succeeded: bool = True
    requests: int = 1  # net count: +1, or 0 for a state that was cancelled

    @property
    def total(self) -> int:
        return self.total_tokens if self.total_tokens is not None else self.input_tokens + self.output_tokens

    def key_and_name(self, dimension: str) -> tuple[str, str]:
        return {
            "provider": (self.provider, ""),
            "model": (self.request_model or self.response_model, ""),
            "profile": (self.profile_id, self.profile_alias),
            "user": (self.user_id, self.user_name),
        }[dimension]


def ns(text: str) -> int:
    """UTC nanoseconds of ISO 8601 text with microseconds at most; no offset means UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1_000


def stamp(value_ns: int) -> str:
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value_ns // 1_000)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def in_range(sent: Iterable[Sent], start_ns: int, end_ns: int) -> list[Sent]:
    return [op for op in sent if start_ns <= op.start_ns < end_ns and op.requests]


def summary(sent: Iterable[Sent], start_ns: int, end_ns: int) -> dict:
    ops = in_range(sent, start_ns, end_ns)
    requests = sum(op.requests for op in ops)
    successes = sum(op.requests for op in ops if op.succeeded)
    duration = sum(op.duration_ns * op.requests for op in ops)
    return {
        "averageDurationMs": duration // (requests * 1_000_000) if requests else 0,
        "failureCount": requests - successes,
        "inputTokens": sum(op.input_tokens * op.requests for op in ops),
        "outputTokens": sum(op.output_tokens * op.requests for op in ops),
        "successCount": successes,
        "successRate": successes / requests if requests else 0,
        "totalRequests": requests,
        "totalTokens": sum(op.total * op.requests for op in ops),
    }


def bucket_start(value_ns: int, granularity: str) -> int:
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=value_ns // 1_000)
    hour = moment.replace(minute=0, second=0, microsecond=0)
    start = {
        "hour": hour,
        "day": hour.replace(hour=0),
        "week": hour.replace(hour=0) - timedelta(days=hour.weekday()),  # Monday
        "month": hour.replace(hour=0, day=1),
    }[granularity]
    return ns(start.isoformat())


def time_series(sent: Iterable[Sent], start_ns: int, end_ns: int, granularity: str) -> list[dict]:
    buckets: dict[int, list[Sent]] = defaultdict(list)
    for op in in_range(sent, start_ns, end_ns):
        buckets[bucket_start(op.start_ns, granularity)].append(op)
    points = []
    for start in sorted(buckets):
        ops = buckets[start]
        requests = sum(op.requests for op in ops)
        if requests == 0:
            continue
        successes = sum(op.requests for op in ops if op.succeeded)
        points.append({
            "failureCount": requests - successes,
            "inputTokens": sum(op.input_tokens * op.requests for op in ops),
            "outputTokens": sum(op.output_tokens * op.requests for op in ops),
            "requestCount": requests,
            "successCount": successes,
            "timestamp": stamp(start),
            "totalTokens": sum(op.total * op.requests for op in ops),
        })
    return points


def breakdown(sent: Iterable[Sent], start_ns: int, end_ns: int, dimension: str) -> list[dict]:
    """Groups by key; the name is the one of the latest day with a positive count (ties: greatest name)."""
    groups: dict[str, dict] = {}
    named: dict[str, dict[tuple[int, str], int]] = defaultdict(lambda: defaultdict(int))
    for op in in_range(sent, start_ns, end_ns):
        key, name = op.key_and_name(dimension)
        group = groups.setdefault(key, {"requests": 0, "tokens": 0})
        group["requests"] += op.requests
        group["tokens"] += op.total * op.requests
        named[key][(op.start_ns // (24 * HOUR_NS), name)] += op.requests
    total = sum(group["requests"] for group in groups.values())
    items = []
    for key, group in groups.items():
        if group["requests"] <= 0:
            continue
        positive = [hour_and_name for hour_and_name, count in named[key].items() if count > 0]
        name = max(positive)[1] if positive else ""
        items.append({
            "dimension": key or UNKNOWN[dimension],
            "dimensionName": (name or None) if key else None,
            "percentage": 100 * group["requests"] / total,
            "requestCount": group["requests"],
            "totalTokens": group["tokens"],
        })
    items.sort(key=lambda item: (-item["requestCount"], item["dimension"]))
    return items
