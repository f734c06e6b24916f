"""schemathesis against the service's own /openapi.json, over real HTTP, with data to answer from.

Every operation of the document, through schemathesis' coverage phase
(boundary and invalid values of every parameter, systematically), its
fuzzing phase (valid and invalid inputs) and its stateful phase (ids taken
from audit-log pages fed to the by-id route), with every check it has: no
5xx, status codes, content types, headers and bodies as documented, invalid
input refused, missing or bad auth refused. Once open and twice with
analytics keys configured: without a key (every 401 must be a documented
problem) and with one.

schemathesis runs as its command line (`schemathesis run`), its main
interface: its pytest plugin reads `Node._nodeid`, which pytest 9.2 no longer
has. Deterministic generation: the same requests on every run.

One check is left out: `positive_data_acceptance` expects every
schema-valid request to succeed, but `from` must be before `to`, a rule
between two parameters that OpenAPI 3.0 cannot express; the service answers
400 as the contract requires. Every other check runs.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.hostile.conftest import seed

API_KEY = "hostile-analytics-key"
INGEST_KEY = "hostile-ingest-key"
# A request slower than this is a failure (a hang would be caught by --request-timeout).
MAX_RESPONSE_SECONDS = 10


def schemathesis(url: str, cwd, *options: str) -> str:
    """Run `schemathesis run` against url's /openapi.json; fail with its report unless every check passed."""
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json",
        "--checks", "all",
        "--exclude-checks", "positive_data_acceptance",
        "--generation-deterministic",
        "--workers", "1",
        "--request-timeout", "30",
        "--max-response-time", str(MAX_RESPONSE_SECONDS),
        "--no-color",
        *options,
    ]
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "14 selected / 14 total" in output, "every operation of the document is tested"
    cases = re.search(r"(\d+) generated, (\d+) passed", output)
    assert cases and int(cases[1]) > 0, output
    assert not re.search(r"\b\d+ (failed|errors?)\b", output), output
    return output


@pytest.fixture(scope="module")
def open_api(hostile_services):
    service = hostile_services(role="all")
    seed(service)
    return service


@pytest.fixture(scope="module")
def keyed_api(hostile_services):
    service = hostile_services(role="all", api_keys=(API_KEY,), ingest_keys=(INGEST_KEY,))
    seed_headers = {"Authorization": f"Bearer {INGEST_KEY}"}
    seed(service, headers=seed_headers)
    return service


def test_open_api_answers_every_generated_request_as_documented(open_api, tmp_path):
    schemathesis(open_api.url, tmp_path, "--max-examples", "20", "--phases", "coverage,fuzzing,stateful")


def test_keyed_api_without_a_key_answers_documented_401s(keyed_api, tmp_path):
    output = schemathesis(keyed_api.url, tmp_path, "--max-examples", "5", "--phases", "coverage,fuzzing")
    assert "401 Unauthorized (14 operations)" in output


def test_keyed_api_with_a_key_answers_as_documented(keyed_api, tmp_path):
    schemathesis(
        keyed_api.url, tmp_path, "--max-examples", "8", "--phases", "coverage,fuzzing",
        "--header", f"Authorization: Bearer {API_KEY}",
    )


def test_an_ingest_key_is_a_documented_403(keyed_api, tmp_path):
    output = schemathesis(
        keyed_api.url, tmp_path, "--max-examples", "5", "--phases", "fuzzing",
        "--header", f"Authorization: Bearer {INGEST_KEY}",
    )
    assert "403 Forbidden (14 operations)" in output
