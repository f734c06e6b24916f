"""The signed ranges a query reads sum to exactly its period, at every level's resolution, and read little.

tests/api/test_rollup_exact.py checks the answers against raw rows; this
checks the plan itself over many more periods than a database test could.
"""

from __future__ import annotations

import random

import pytest

from clickhouse import analytics
from clickhouse.analytics import DAY_NS, HOUR_NS, MAX_NS, Period

NOW = 1_796_160_000 * 10**9 + 17 * 60 * 10**9 + 123  # 2026-12-01T21:17Z and a few ns


def coverage(pieces, points):
    """For each point, the signed count of the pieces that contain it."""
    return [sum(p.sign for p in pieces if p.start <= point < p.end) for point in points]


def random_period(rng: random.Random) -> Period:
    start = NOW - rng.randrange(120 * DAY_NS)
    if rng.random() < 0.3:
        start = start // HOUR_NS * HOUR_NS + rng.choice([0, 1, -1])
    length = rng.choice([1, rng.randrange(HOUR_NS), rng.randrange(2 * DAY_NS), 24 * HOUR_NS, 30 * DAY_NS, rng.randrange(90 * DAY_NS)])
    return Period(start, start + length)


@pytest.mark.parametrize("days", [True, False], ids=["with-days", "hours-only"])
def test_the_pieces_add_up_to_the_period_exactly(days):
    rng = random.Random(5)
    for _ in range(400):
        period = random_period(rng)
        now = rng.choice([NOW, period.end_ns, period.start_ns, period.end_ns + rng.randrange(DAY_NS)])
        pieces = analytics._plan(period, days, now)
        bounds = sorted({period.start_ns, period.end_ns} | {p.start for p in pieces} | {p.end for p in pieces})
        # Every elementary interval between two bounds is inside or outside as a whole.
        points = [b - 1 for b in bounds] + bounds
        expected = [1 if period.start_ns <= point < period.end_ns else 0 for point in points]
        assert coverage(pieces, points) == expected, (period, pieces)
        for piece in pieces:
            assert piece.start < piece.end and piece.sign in (1, -1)
            assert 0 <= piece.start and piece.end <= MAX_NS
            if piece.level is analytics._HOURLY:
                assert piece.start % HOUR_NS == 0 and piece.end % HOUR_NS == 0
            if piece.level is analytics._DAILY:
                assert days and piece.start % DAY_NS == 0 and piece.end % DAY_NS == 0
        assert len(pieces) <= 5
        for level in (analytics._DAILY, analytics._HOURLY, analytics._RAW):
            assert sum(p.level is level for p in pieces) <= 2


def test_a_range_ending_now_reads_raw_rows_of_at_most_half_an_hour_before_now():
    for minutes in range(0, 60, 7):
        now = NOW // HOUR_NS * HOUR_NS + minutes * 60 * 10**9 + 5
        for length in (24 * HOUR_NS, 7 * DAY_NS, 30 * DAY_NS):
            pieces = analytics._plan(Period(now - length, now), True, now)
            raw_before_now = sum(min(p.end, now) - p.start for p in pieces if p.level is analytics._RAW and p.start < now)
            # One edge at most 30 minutes; after now nothing has happened yet.
            assert raw_before_now <= HOUR_NS // 2, (minutes, length, pieces)


def test_whole_days_come_from_the_daily_rollup_and_short_ranges_from_raw_rows():
    month = Period(NOW - 30 * DAY_NS, NOW)
    pieces = analytics._plan(month, True, NOW)
    daily = [p for p in pieces if p.level is analytics._DAILY]
    assert len(daily) == 1 and daily[0].end - daily[0].start >= 29 * DAY_NS
    hourly_hours = sum(p.end - p.start for p in pieces if p.level is analytics._HOURLY and p.start < NOW) // HOUR_NS
    assert hourly_hours <= 24  # at most 12 per edge
    minute = Period(NOW - 60 * 10**9, NOW)
    assert [p.level for p in analytics._plan(minute, True, NOW)] == [analytics._RAW]
    assert analytics._plan(Period(NOW, NOW), True, NOW) == []
