"""`clickhouse.synthetic.generate` against real embedded ClickHouse: counts, determinism, shape."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from clickhouse import synthetic
from clickhouse.client import Database
from clickhouse.migrate import migrate
from tests.support.service import drop_database

END = datetime(2025, 6, 1, 12, 30, 15, 250000, tzinfo=UTC)
DAYS = 30
OPERATIONS = 200_000
GUID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"

# Every column, hashed: equal checksums mean equal tables (row order aside).
CHECKSUM = "SELECT count() AS n, sum(cityHash64(*)) AS checksum FROM operations"


def fresh_database(chdb_dir: Path) -> Database:
    """A new migrated database on the session's engine (no retention TTL)."""
    database = Database(f"chdb://{chdb_dir}?database=synthetic_{uuid.uuid4().hex[:10]}")
    database.ensure_database()
    migrate(database.client(), 0)
    return database


def dispose(database: Database) -> None:
    database.close()
    drop_database(f"chdb://{database.target.path}?database={database.name}")


@pytest.fixture
def new_database(chdb_dir: Path) -> Iterator[Callable[[], Database]]:
    """Fresh databases on demand, dropped after the test."""
    opened: list[Database] = []

    def open_one() -> Database:
        opened.append(fresh_database(chdb_dir))
        return opened[-1]

    yield open_one
    for database in opened:
        dispose(database)


@pytest.fixture(scope="module")
def generated(chdb_dir: Path) -> Iterator[Database]:
    """One generated data set shared by the shape tests (generation is the slow part)."""
    database = fresh_database(chdb_dir)
    written = synthetic.generate(database, operations=OPERATIONS, days=DAYS, seed=7, end=END, batch_rows=70_000)
    assert written == OPERATIONS
    yield database
    dispose(database)


def one(database: Database, sql: str, **parameters: object) -> dict[str, Any]:
    rows = list(database.client().query(sql, parameters=parameters).named_results())
    assert len(rows) == 1, rows
    return rows[0]


def test_counts_ids_and_states(generated: Database) -> None:
    row = one(
        generated,
        """
        SELECT count() AS n, uniqExact(span_id) AS spans, uniqExact(trace_id) AS traces,
               countIf(match(trace_id, '^[0-9a-f]{32}$') AND match(span_id, '^[0-9a-f]{16}$')) AS well_formed,
               countIf(parent_span_id = '' OR match(parent_span_id, '^[0-9a-f]{16}$')) AS parents_ok,
               min(sign) AS min_sign, max(sign) AS max_sign, min(version) AS min_version, max(version) AS max_version
        FROM operations
        """,
    )
    assert row == {
        "n": OPERATIONS, "spans": OPERATIONS, "traces": OPERATIONS, "well_formed": OPERATIONS,
        "parents_ok": OPERATIONS, "min_sign": 1, "max_sign": 1, "min_version": 1, "max_version": 1,
    }


def test_same_seed_same_rows_whatever_the_batch_size_and_another_seed_differs(
    generated: Database, new_database: Callable[[], Database]
) -> None:
    again, other = new_database(), new_database()
    synthetic.generate(again, operations=OPERATIONS, days=DAYS, seed=7, end=END, batch_rows=OPERATIONS)
    synthetic.generate(other, operations=OPERATIONS, days=DAYS, seed=8, end=END)
    reference = one(generated, CHECKSUM)
    assert one(again, CHECKSUM) == reference
    different = one(other, CHECKSUM)
    assert different["n"] == OPERATIONS and different["checksum"] != reference["checksum"]


def test_timestamps_fill_the_range_with_a_daily_and_weekly_rhythm(generated: Database) -> None:
    start = END - timedelta(days=DAYS)
    row = one(
        generated,
        """
        SELECT min(timestamp) >= {start:DateTime64(6, 'UTC')} AS after_start,
               max(timestamp) < {end:DateTime64(6, 'UTC')} AS before_end,
               min(timestamp) < {start:DateTime64(6, 'UTC')} + INTERVAL 1 HOUR AS starts_at_start,
               max(timestamp) > {end:DateTime64(6, 'UTC')} - INTERVAL 1 HOUR AS ends_at_end,
               uniqExact(toStartOfHour(timestamp)) AS hours,
               countIf(toHour(timestamp) BETWEEN 9 AND 16) / countIf(toHour(timestamp) BETWEEN 0 AND 7) AS day_vs_night,
               countIf(toDayOfWeek(timestamp) = 3) / countIf(toDayOfWeek(timestamp) = 7) AS wednesday_vs_sunday,
               countIf(received_at < timestamp) AS received_before_start
        FROM operations
        """,
        start=start,
        end=END,
    )
    assert row["after_start"] and row["before_end"] and row["starts_at_start"] and row["ends_at_end"]
    assert row["hours"] == DAYS * 24 + 1  # whole hours plus the partial ones at both ends
    assert row["day_vs_night"] > 5
    assert row["wednesday_vs_sunday"] > 2.5
    assert row["received_before_start"] == 0


def test_a_few_percent_fail_with_an_error_and_no_usage(generated: Database) -> None:
    row = one(
        generated,
        """
        SELECT countIf(NOT succeeded) / count() AS failure_share,
               countIf(NOT succeeded AND (error_type = '' OR error_message = '')) AS failures_without_error,
               countIf(succeeded AND (error_type != '' OR error_message != '')) AS successes_with_error,
               countIf(NOT succeeded AND total_tokens > 0) AS failures_with_tokens,
               uniqExactIf(error_type, NOT succeeded) AS error_types
        FROM operations
        """,
    )
    assert 0.02 < row["failure_share"] < 0.04
    assert row["failures_without_error"] == row["successes_with_error"] == row["failures_with_tokens"] == 0
    assert row["error_types"] >= 5


def test_usage_hourly_agrees_with_the_signed_sums_of_operations(generated: Database) -> None:
    # The materialized view filled usage_hourly during the inserts.
    mismatches = one(
        generated,
        """
        WITH raw AS (
            SELECT d.1 AS dimension, toStartOfHour(timestamp) AS hour, d.2 AS key,
                   sum(sign) AS requests, sum(sign * input_tokens) AS input_tokens,
                   sum(sign * output_tokens) AS output_tokens, sum(sign * total_tokens) AS total_tokens,
                   sum(sign * succeeded) AS successes, sum(sign * (1 - succeeded)) AS failures,
                   sum(sign * duration_ns) AS duration_ns
            FROM operations
            ARRAY JOIN [('all', ''), ('provider', toString(provider)),
                        ('model', if(request_model != '', toString(request_model), toString(response_model))),
                        ('profile', toString(profile_id)), ('user', toString(user_id))] AS d
            GROUP BY dimension, hour, key
        ),
        rollup AS (
            SELECT toString(dimension) AS dimension, hour, key,
                   sum(requests) AS requests, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
                   sum(total_tokens) AS total_tokens, sum(successes) AS successes, sum(failures) AS failures,
                   sum(duration_ns) AS duration_ns
            FROM usage_hourly
            GROUP BY dimension, hour, key
        )
        SELECT (SELECT count() FROM raw) AS groups,
               (SELECT count() FROM rollup) AS rollup_groups,
               (SELECT count() FROM (SELECT * FROM raw EXCEPT SELECT * FROM rollup)) AS missing_from_rollup
        """,
    )
    assert mismatches["groups"] == mismatches["rollup_groups"] > 100_000
    assert mismatches["missing_from_rollup"] == 0


def test_cardinalities_and_skew_are_realistic(generated: Database) -> None:
    row = one(
        generated,
        """
        SELECT uniqExact(provider) AS providers, uniqExact(request_model) AS models,
               uniqExactIf(profile_id, profile_id != '') AS profiles,
               uniqExactIf(user_id, user_id != '') AS users,
               countIf(user_id = '') / count() AS anonymous_share,
               countIf(user_id != '' AND user_name = '') AS users_without_name,
               countIf(profile_id != '' AND NOT match(profile_id, {guid:String})) AS bad_profile_ids,
               countIf(user_id != '' AND NOT match(user_id, {guid:String})) AS bad_user_ids,
               uniqExact(capability) AS capabilities
        FROM operations
        """,
        guid=GUID,
    )
    assert row["providers"] >= 6
    assert 20 <= row["models"] <= 60
    assert 250 <= row["profiles"] <= synthetic.PROFILES
    assert 2_000 <= row["users"] <= synthetic.USERS
    assert 0.09 < row["anonymous_share"] < 0.15
    assert row["users_without_name"] == row["bad_profile_ids"] == row["bad_user_ids"] == 0
    assert row["capabilities"] == 2

    # Each model belongs to its provider as in the catalogue; each profile has one alias and one model.
    pairs = generated.client().query(
        "SELECT DISTINCT provider, provider_raw, request_model, response_model, capability, server_address FROM operations"
    ).result_rows
    assert set(pairs) <= {m[:6] for m in synthetic.MODELS}
    profiles = one(
        generated,
        """
        SELECT max(aliases) AS aliases, max(models) AS models, uniqExact(alias) AS distinct_aliases, count() AS profiles
        FROM (SELECT profile_id, uniqExact(profile_alias) AS aliases, uniqExact(request_model) AS models,
                     any(profile_alias) AS alias
              FROM operations WHERE profile_id != '' GROUP BY profile_id)
        """,
    )
    assert profiles["aliases"] == profiles["models"] == 1
    assert profiles["distinct_aliases"] == profiles["profiles"]

    # Zipf-like popularity: the top key carries far more than the median key
    # (for s = 1 the ratio is about log 2 / log(1 + 1/median rank)).
    for column, ratio in (("profile_id", 20), ("user_id", 20), ("request_model", 5)):
        skew = one(
            generated,
            f"""
            SELECT max(c) / median(c) AS top_vs_median
            FROM (SELECT {column} AS k, count() AS c FROM operations WHERE k != '' GROUP BY k)
            """,
        )
        assert skew["top_vs_median"] > ratio, column


def test_tokens_and_durations_follow_the_capability(generated: Database) -> None:
    stats = {
        row["capability"]: row
        for row in generated.client().query(
            """
            SELECT toString(capability) AS capability, median(input_tokens) AS input, max(output_tokens) AS max_output,
                   median(output_tokens) AS output, median(duration_ns) / 1e6 AS ms,
                   countIf(total_tokens != input_tokens + output_tokens) AS bad_totals
            FROM operations WHERE succeeded GROUP BY capability
            """
        ).named_results()
    }
    chat, embedding = stats["Chat"], stats["Embedding"]
    assert 300 < chat["input"] < 1500 and 80 < chat["output"] < 400 and 1000 < chat["ms"] < 6000
    assert 30 < embedding["input"] < 400 and embedding["max_output"] == 0 and 20 < embedding["ms"] < 200
    assert chat["bad_totals"] == embedding["bad_totals"] == 0


def test_rejects_an_empty_request(new_database: Callable[[], Database]) -> None:
    with pytest.raises(ValueError):
        synthetic.generate(new_database(), operations=0, days=1)
