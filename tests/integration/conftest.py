from __future__ import annotations

import uuid
from collections import defaultdict

import pytest

from clickhouse.client import Database
from clickhouse.migrate import migrate
from clickhouse.operations import OperationStore
from ingest.codec import decode_protobuf
from ingest.config import IngestConfig
from ingest.pipeline import ExportResult, IngestService
from tests.support.service import drop_database


@pytest.fixture(scope="module")
def database(chdb_dir):
    """A fresh, migrated database in this test process's embedded ClickHouse."""
    url = f"chdb://{chdb_dir}?database=t_{uuid.uuid4().hex[:12]}"
    db = Database(url)
    db.ensure_database()
    migrate(db.client(), retention_days=0)
    yield db
    db.close()
    drop_database(url)


class Pipeline:
    """An ingest pipeline over a real store, fed with export request bodies."""

    def __init__(self, database: Database, config: IngestConfig, retention_days: int = 0, store=None):
        self.database = database
        store = store or OperationStore(database, config.context_keys.all_keys())
        self.service = IngestService(config, store, retention_days)
        self.service.start()

    def send(self, body: bytes) -> ExportResult:
        return self.service.export(decode_protobuf(body))

    def close(self) -> None:
        self.service.close()

    def rows(self, trace: str) -> list[dict]:
        result = self.database.client().query(
            "SELECT *, toUnixTimestamp64Nano(timestamp) AS ts_ns FROM operations WHERE trace_id = {t:String} ORDER BY received_at, sign",
            parameters={"t": trace},
        )
        return list(result.named_results())

    def live(self, trace: str) -> dict[str, dict]:
        """The live row of each stored span of a trace: the +1 row of a version whose signs sum to 1."""
        by_version: dict[tuple[str, int], list[dict]] = defaultdict(list)
        for row in self.rows(trace):
            by_version[(row["span_id"], row["version"])].append(row)
        live = {}
        for (span, _), rows in sorted(by_version.items(), key=lambda item: item[0][1]):
            if sum(r["sign"] for r in rows) > 0:
                live[span] = next(r for r in rows if r["sign"] > 0)
        return live

    def only(self, trace: str) -> dict:
        live = self.live(trace)
        assert len(live) == 1, live
        return next(iter(live.values()))

    def net(self, trace: str, column: str | None = None) -> int:
        """What every analytics query computes: sum(sign), or sum(sign * column)."""
        return sum(r["sign"] * (r[column] if column else 1) for r in self.rows(trace))


@pytest.fixture
def make_pipeline(database):
    started: list[Pipeline] = []

    def start(retention_days: int = 0, **config) -> Pipeline:
        pipeline = Pipeline(database, IngestConfig(batch_linger_ms=0, **config), retention_days)
        started.append(pipeline)
        return pipeline

    yield start
    for pipeline in started:
        pipeline.close()


@pytest.fixture
def pipeline(make_pipeline):
    return make_pipeline()
