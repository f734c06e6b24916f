"""Apply the ordered SQL files in `migrations/` and record them.

Files are named ``NNNN_description.sql`` and applied in version order. Each
applied file is recorded in `schema_migrations` with its checksum; a file that
changed after it was applied is an error, not a silent re-run.

Safe to run twice and from two processes at once: every statement is written
to be idempotent (IF NOT EXISTS), a statement that lost a creation race to
another process counts as applied, and `schema_migrations` is a
ReplacingMergeTree keyed by version, so recording a version twice keeps one row.
(Embedded chdb cannot be opened by two processes at all; the second gets a
lock error, which the CLI reports.)
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass
from importlib import resources

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

log = logging.getLogger(__name__)

# Repeatable migrations: objects whose definition is generated from code and
# re-applied whenever the generated SQL changes (as Flyway's R__ scripts).
REPEATABLE_TABLE_DDL = """
CREATE TABLE IF NOT EXISTS schema_repeatable
(
    name String,
    checksum String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY name
"""

MIGRATIONS_TABLE_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY version
"""

# Tables whose rows expire after the retention period, with the expression of
# a row's time.
RETAINED_TABLES: dict[str, str] = {
    "operations": "toDateTime(timestamp)",
    "usage_hourly": "hour",
    "usage_daily": "day",
}

_TTL_DAYS = re.compile(r"TTL .*toIntervalDay\((?:_CAST\()?(\d+)")
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Codes that mean another process already did what this statement does.
_ALREADY_DONE = {44, 57, 82}  # duplicate column, table exists, database exists


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self) -> list[str]:
        """The file split on semicolons that end a line; comments are kept with their statement."""
        parts = re.split(r";\s*$", self.sql, flags=re.MULTILINE)
        return [part.strip() for part in parts if _has_code(part)]


def _has_code(sql: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in sql.splitlines())


def available() -> list[Migration]:
    folder = resources.files("clickhouse") / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version number: {versions}")
    return found


def applied(client: Client) -> dict[int, str]:
    client.command(MIGRATIONS_TABLE_DDL)
    rows = client.query("SELECT version, argMax(checksum, applied_at) FROM schema_migrations GROUP BY version")
    return {int(version): checksum for version, checksum in rows.result_rows}


def pending(client: Client) -> list[Migration]:
    done = applied(client)
    return [m for m in available() if m.version not in done]


def mapping_current(client: Client) -> bool:
    """Whether the mapping view matches the code (readiness checks this too)."""
    from clickhouse import mapping

    checksum = hashlib.sha256(mapping.view_query().encode()).hexdigest()
    rows = client.query(
        "SELECT argMax(checksum, applied_at) FROM schema_repeatable WHERE name = {n:String}", parameters={"n": mapping.VIEW}
    ).result_rows
    return bool(rows) and rows[0][0] == checksum


def migrate(client: Client, retention_days: int) -> list[Migration]:
    """Apply every pending migration, then the retention TTL. Returns what was applied."""
    done = applied(client)
    ran = []
    for migration in available():
        if migration.version in done:
            if done[migration.version] != migration.checksum:
                raise MigrationError(
                    f"migration {migration.version:04d}_{migration.name}.sql changed after it was applied; "
                    "add a new migration instead of editing an applied one"
                )
            continue
        log.info("applying migration %04d_%s", migration.version, migration.name)
        for statement in migration.statements():
            _run_idempotent(client, statement)
        client.insert(
            "schema_migrations",
            [[migration.version, migration.name, migration.checksum]],
            column_names=["version", "name", "checksum"],
        )
        ran.append(migration)
    apply_repeatable(client)
    apply_retention(client, retention_days)
    return ran


def apply_repeatable(client: Client) -> bool:
    """Create the mapping view, or alter it in place when its generated query changed."""
    from clickhouse import mapping

    client.command(REPEATABLE_TABLE_DDL)
    query = mapping.view_query()
    checksum = hashlib.sha256(query.encode()).hexdigest()
    recorded = client.query(
        "SELECT argMax(checksum, applied_at) FROM schema_repeatable WHERE name = {n:String}", parameters={"n": mapping.VIEW}
    ).result_rows
    exists = client.command("EXISTS TABLE {n:Identifier}", parameters={"n": mapping.VIEW}) == 1
    if exists and recorded and recorded[0][0] == checksum:
        return False
    if exists:
        log.info("updating the mapping view %s", mapping.VIEW)
        # In place: inserts keep flowing through the view while it changes.
        client.command(f"ALTER TABLE {mapping.VIEW} MODIFY QUERY {query}")
    else:
        _run_idempotent(client, mapping.view_ddl())
    client.insert("schema_repeatable", [[mapping.VIEW, checksum]], column_names=["name", "checksum"])
    return True


def apply_retention(client: Client, days: int) -> None:
    """Make every retained table's TTL match the setting; 0 removes the TTL."""
    for table, time_expression in RETAINED_TABLES.items():
        rows = client.query(
            "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = {t:String}",
            parameters={"t": table},
        ).result_rows
        if not rows:
            continue
        current = _TTL_DAYS.search(rows[0][0])
        current_days = int(current.group(1)) if current else 0
        if current_days == days:
            continue
        if days == 0:
            client.command("ALTER TABLE {t:Identifier} REMOVE TTL", parameters={"t": table})
        else:
            log.info("setting retention of %s to %d days", table, days)
            # The expression is a constant of this module, the day count a bound parameter.
            client.command(
                f"ALTER TABLE {{t:Identifier}} MODIFY TTL {time_expression} + toIntervalDay({{days:UInt32}})",
                parameters={"t": table, "days": days},
            )


def _run_idempotent(client: Client, statement: str) -> None:
    for attempt in range(3):
        try:
            client.command(statement)
            return
        except DatabaseError as error:
            if getattr(error, "code", None) in _ALREADY_DONE:
                return
            if attempt == 2:
                raise
            # A concurrent migrator may hold a DDL lock for a moment.
            time.sleep(0.2 * (attempt + 1))
