"""Migrations: ordered, recorded, idempotent, safe concurrently; retention and the mapping view kept current."""

from __future__ import annotations

import threading
import uuid

import pytest

from clickhouse import mapping
from clickhouse.client import Database
from clickhouse.migrate import Migration, MigrationError, apply_repeatable, available, mapping_current, migrate
from tests.support.service import drop_database


@pytest.fixture
def fresh(chdb_dir):
    url = f"chdb://{chdb_dir}?database=m_{uuid.uuid4().hex[:12]}"
    database = Database(url)
    database.ensure_database()
    yield database
    database.close()
    drop_database(url)


def tables(database: Database) -> set[str]:
    return {row[0] for row in database.client().query("SELECT name FROM system.tables WHERE database = currentDatabase()").result_rows}


def test_migrations_apply_in_order_once(fresh):
    applied = migrate(fresh.client(), retention_days=0)
    assert [m.version for m in applied] == sorted(m.version for m in available())
    assert {"operations", "usage_hourly", "usage_daily", "incoming_spans", mapping.VIEW} <= tables(fresh)
    assert migrate(fresh.client(), retention_days=0) == [], "a second run applies nothing"
    recorded = fresh.client().query("SELECT version FROM schema_migrations FINAL ORDER BY version").result_rows
    assert [v for (v,) in recorded] == [m.version for m in applied]


def test_two_migrators_at_once(fresh):
    errors = []

    def run():
        try:
            migrate(Database(fresh.target.url + f"?database={fresh.name}").client(), retention_days=30)
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert migrate(fresh.client(), retention_days=30) == []
    versions = fresh.client().query("SELECT version, count() FROM schema_migrations FINAL GROUP BY version").result_rows
    assert all(count == 1 for _, count in versions)


def test_an_applied_migration_that_changed_is_refused(fresh, monkeypatch):
    migrate(fresh.client(), retention_days=0)
    edited = [Migration(m.version, m.name, m.sql + "\n-- edited later\n") if m.version == 1 else m for m in available()]
    monkeypatch.setattr("clickhouse.migrate.available", lambda: edited)
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(fresh.client(), retention_days=0)


def test_retention_follows_the_setting(fresh):
    def ttl(table: str) -> str:
        return fresh.client().query(
            "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = {t:String}", parameters={"t": table}
        ).result_rows[0][0]

    migrate(fresh.client(), retention_days=30)
    assert all("toIntervalDay(_CAST(30" in ttl(t) for t in ("operations", "usage_hourly", "usage_daily"))
    migrate(fresh.client(), retention_days=90)
    assert "toIntervalDay(_CAST(90" in ttl("operations")
    migrate(fresh.client(), retention_days=0)
    assert " TTL " not in ttl("operations")


def test_the_mapping_view_is_altered_in_place_when_its_query_changes(fresh, monkeypatch):
    migrate(fresh.client(), retention_days=0)
    assert mapping_current(fresh.client())
    original = mapping.view_query
    monkeypatch.setattr(mapping, "view_query", lambda: original().replace("AS span_name", "AS span_name_unused, span.name AS span_name"))
    assert not mapping_current(fresh.client()), "readiness sees the view is stale"
    assert apply_repeatable(fresh.client()) is True
    assert mapping_current(fresh.client())
    assert apply_repeatable(fresh.client()) is False
    create = fresh.client().query(
        "SELECT create_table_query FROM system.tables WHERE database = currentDatabase() AND name = {n:String}", parameters={"n": mapping.VIEW}
    ).result_rows[0][0]
    assert "span_name_unused" in create


def test_the_daily_backfill_rolls_up_what_is_stored_once(fresh):
    migrate(fresh.client(), retention_days=0)
    client = fresh.client()
    client.command(
        "INSERT INTO usage_hourly VALUES ('all', '2025-01-01 10:00:00', '', '', 3, 30, 3, 33, 2, 1, 900), "
        "('all', '2025-01-01 11:00:00', '', '', 2, 20, 2, 22, 2, 0, 600), ('user', '2025-01-02 05:00:00', 'u', 'Ada', 1, 1, 1, 2, 1, 0, 5)"
    )
    client.command("TRUNCATE TABLE usage_daily")  # as before 0004: hourly rows, no daily ones
    backfill = next(m for m in available() if m.name == "usage_daily").statements()[-1]
    for _ in range(2):  # the guard makes a second run a no-op
        client.command(backfill)
    rows = client.query("SELECT dimension, toString(day), key, sum(requests), sum(duration_ns) FROM usage_daily GROUP BY ALL ORDER BY ALL").result_rows
    assert rows == [("all", "2025-01-01 00:00:00", "", 5, 1500), ("user", "2025-01-02 00:00:00", "u", 1, 5)]


def test_the_rollup_keys_become_low_cardinality_with_their_rows_kept(fresh, monkeypatch):
    before = [m for m in available() if m.name != "rollup_low_cardinality"]
    monkeypatch.setattr("clickhouse.migrate.available", lambda: before)
    migrate(fresh.client(), retention_days=0)
    client = fresh.client()
    client.command(
        "INSERT INTO usage_hourly VALUES ('user', '2025-01-01 10:00:00', 'u1', 'Ada', 3, 30, 3, 33, 2, 1, 900), "
        "('user', '2025-01-01 11:00:00', 'u2', '', 2, 20, 2, 22, 2, 0, 600)"
    )

    def stored() -> list[tuple]:
        # Sorted here: an ORDER BY after UNION ALL sorts only its own SELECT.
        return sorted(client.query(
            "SELECT key, name, day, sum(requests) FROM usage_daily GROUP BY ALL "
            "UNION ALL SELECT key, name, hour, sum(requests) FROM usage_hourly GROUP BY ALL"
        ).result_rows)

    def key_types() -> set[str]:
        return {
            row[0]
            for row in client.query(
                "SELECT type FROM system.columns WHERE database = currentDatabase() "
                "AND table IN ('usage_hourly', 'usage_daily') AND name IN ('key', 'name')"
            ).result_rows
        }

    rows = stored()
    assert key_types() == {"String"}
    monkeypatch.undo()
    assert [m.name for m in migrate(client, retention_days=0)] == ["rollup_low_cardinality"]
    assert key_types() == {"LowCardinality(String)"}
    assert stored() == rows and len(rows) == 4
    client.command("INSERT INTO usage_hourly VALUES ('user', '2025-01-01 10:00:00', 'u1', 'Ada', 1, 0, 0, 0, 1, 0, 1)")
    assert client.query("SELECT sum(requests) FROM usage_daily WHERE key = 'u1'").result_rows == [(4,)]


def test_operations_merges_with_a_wider_base_and_the_rollups_keep_the_default(fresh):
    migrate(fresh.client(), retention_days=0)
    engines = dict(
        fresh.client().query(
            "SELECT name, engine_full FROM system.tables WHERE database = currentDatabase() "
            "AND name IN ('operations', 'usage_hourly', 'usage_daily')"
        ).result_rows
    )
    assert "merge_selector_base = 20" in engines["operations"]
    assert "merge_selector_base" not in engines["usage_hourly"] + engines["usage_daily"]
