"""Query values and wire formats on plain data: ISO 8601 in, UTC nanoseconds out, and back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.api.schemas import UsageQuerySchema, format_instant, parse_instant
from clickhouse.analytics import Granularity

MIDNIGHT = 1_704_067_200 * 10**9  # 2024-01-01T00:00:00Z


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-01", MIDNIGHT),
        ("2024-01-01T00:00", MIDNIGHT),
        ("2024-01-01T00:00:00", MIDNIGHT),
        ("2024-01-01T00:00:00Z", MIDNIGHT),
        ("2024-01-01t00:00:00z", MIDNIGHT),
        ("2024-01-01 00:00:00Z", MIDNIGHT),
        ("2024-01-01T01:00:00+01:00", MIDNIGHT),
        ("2024-01-01T01:00:00+0100", MIDNIGHT),
        ("2024-01-01T01:00:00 01:00", MIDNIGHT),  # an unencoded '+' in a query string
        ("2023-12-31T19:30:00-04:30", MIDNIGHT),
        ("2024-01-01T00:00:00.5Z", MIDNIGHT + 500_000_000),
        ("2024-01-01T00:00:00.0000001Z", MIDNIGHT + 100),  # .NET's seven digits
        ("2024-01-01T00:00:00,123456789Z", MIDNIGHT + 123_456_789),
        ("2024-01-01T00:00:00.1234567891Z", MIDNIGHT + 123_456_789),  # beyond nanoseconds: cut
        ("1969-12-31T23:59:59Z", -10**9),
        ("0001-01-01T00:00:00Z", -62_135_596_800 * 10**9),
    ],
)
def test_parse_instant(text, expected):
    assert parse_instant(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "2024", "2024-1-1", "2024-02-30", "2024-01-01T24:00:00", "2024-01-01T00:00:00+25:00", "2024-01-01T00:00:00+01:60",
     "yesterday", "1704067200", "2024-01-01T00:00:00ZZ", "2024-01-01T00:00:00.Z"],
)
def test_parse_instant_refuses(text):
    with pytest.raises((ValueError, OverflowError)):
        parse_instant(text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (MIDNIGHT, "2024-01-01T00:00:00.000Z"),
        (MIDNIGHT + 999_999_999, "2024-01-01T00:00:00.999Z"),
        (MIDNIGHT + 1_500_000, "2024-01-01T00:00:00.001Z"),
        (datetime(2024, 1, 1, 5, tzinfo=UTC), "2024-01-01T05:00:00.000Z"),
    ],
)
def test_format_instant(value, expected):
    assert format_instant(value) == expected


@pytest.mark.parametrize(
    ("start", "end", "granularity"),
    [
        ("2024-01-01", "2024-01-08", Granularity.HOUR),
        ("2024-01-01", "2024-01-08T00:00:00.000000001", Granularity.DAY),
    ],
)
def test_default_granularity(start, end, granularity):
    assert UsageQuerySchema().load({"from": start, "to": end}).granularity is granularity
