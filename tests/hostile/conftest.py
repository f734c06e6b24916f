"""Services for the hostile-input suite: real servers over real sockets, holding real data.

`hostile_services` starts in-process services (real threaded HTTP server, real
gRPC server when asked, chdb), each with a database of its own, closed after
the module's last test; `seed` ingests a day of model calls over OTLP/HTTP so
that every analytics and audit-log query has rows to answer with. `served` is
the real `ai-usage serve` (gunicorn) in a child process, shared by the whole
session, for what only gunicorn answers (request-line and header limits) and
for memory bounds measured on a process of its own.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.support import spans
from tests.support.service import InProcessService, ServiceProcess, free_port

PROTO = {"Content-Type": "application/x-protobuf"}
SEED_START = 1_741_564_800_000_000_000  # 2025-03-10T00:00:00Z
HOUR = 3_600 * 10**9
# The seeded spans: a spread of providers, models, profiles, users and failures.
SEED_CALLS = 24
# The child process's body limit: small, so that a bomb's bounded inflation
# is also small next to the memory bound the tests assert.
SERVED_MAX_BODY = 8 * 1024 * 1024


@pytest.fixture(scope="module")
def hostile_services(module_services):
    """In-process services that live until the module's last test."""
    return module_services


def seed(service: InProcessService, headers: dict | None = None) -> list[tuple[str, str]]:
    """Ingest SEED_CALLS model calls over OTLP/HTTP; returns their (trace id, span id)."""
    keys = []
    calls = []
    for i in range(SEED_CALLS):
        trace = f"{i + 1:032x}"
        span_id = f"{i + 1:016x}"
        attributes = {
            "gen_ai.operation.name": ("chat", "embeddings", "text_completion")[i % 3],
            "gen_ai.provider.name": ("openai", "anthropic", "")[i % 3],
            "gen_ai.request.model": ("gpt-4o", "claude-3", "text-embed")[i % 3],
            "gen_ai.usage.input_tokens": 10 + i,
            "gen_ai.usage.output_tokens": i,
            "umbraco.ai.profile.id": f"profile-{i % 4}" if i % 5 else "",
            "umbraco.ai.profile.alias": f"alias-{i % 4}",
            "umbraco.ai.user.id": f"user-{i % 3}" if i % 7 else "",
            "umbraco.ai.user.name": f"User {i % 3}",
            "umbraco.ai.entity.id": f"entity-{i % 2}",
            "umbraco.ai.feature.type": "prompt",
        }
        failed = i % 6 == 5
        calls.append(
            spans.span(
                attributes,
                trace=trace,
                span=span_id,
                name=f"chat {i}",
                start=SEED_START + (i % 20) * HOUR + i * 60 * 10**9,
                duration=(i + 1) * 1_000_000,
                status_code=2 if failed else 0,
                status_message="boom" if failed else "",
                exception=("TimeoutError", "model timed out") if failed else None,
            )
        )
        keys.append((trace, span_id))
    response = requests.post(
        f"{service.url}/v1/traces", data=spans.request(*calls), headers={**PROTO, **(headers or {})}, timeout=30
    )
    assert response.status_code == 200, response.content
    return keys


@pytest.fixture(scope="session")
def served(tmp_path_factory):
    """`ai-usage serve` (gunicorn, embedded ClickHouse) with OTLP/gRPC on, for the whole session."""
    root: Path = tmp_path_factory.mktemp("served")
    process = ServiceProcess(
        root / "data",
        env={
            "AI_USAGE_GRPC_PORT": str(free_port()),
            "AI_USAGE_MAX_BODY_BYTES": str(SERVED_MAX_BODY),
            # The process's own retention would refuse the 2025 spans the tests send.
            "AI_USAGE_RETENTION_DAYS": "0",
        },
    )
    process.grpc_port = int(process.env["AI_USAGE_GRPC_PORT"])
    process.start()
    yield process
    code = process.stop()
    assert code == 0, process.output()
