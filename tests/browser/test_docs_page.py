"""Swagger UI at /docs renders in a real headless Chromium with everything served by the service.

Chromium loads the page with a virtual-time budget (scripts run, the OpenAPI
document is fetched, the operation list is rendered), dumps the DOM and writes
its network log. Every request the page made must go to the service itself: no
CDN. A screenshot is kept in test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.service import REPO

pytestmark = pytest.mark.slow

ARTIFACTS = REPO / "test-artifacts"
# Headless flags that keep Chromium from waiting on a network it cannot reach.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=20000",
]
ANALYTICS = "/umbraco/ai/management/api/v1/analytics"
PATHS = [
    f"{ANALYTICS}/{route}"
    for route in (
        "usage-summary", "summary", "usage-time-series", "timeseries", "usage-by-provider", "breakdown/provider",
        "usage-by-model", "breakdown/model", "usage-by-profile", "breakdown/profile", "usage-by-user", "breakdown/user",
    )
] + ["/umbraco/ai/management/api/v1/audit-logs", "/umbraco/ai/management/api/v1/audit-logs/{id}"]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("Chromium is required for the browser test: apt-get install -y chromium (.ci/run installs it)")
    return found


def run_chromium(tmp_path: Path, name: str, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{name}"
    command = [chromium(), *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def page_requests(net_log: Path, origin: str) -> list[str]:
    """URLs the page asked for: its main document and everything it initiated.

    Chromium's own background requests carry no page initiator and are not the page's.
    """
    log = json.loads(net_log.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = []
    for event in log["events"]:
        params = event.get("params") or {}
        if event["type"] != start_job or "url" not in params:
            continue
        if params.get("request_type") == "main frame" or params.get("initiator") == origin:
            urls.append(params["url"])
    return urls


def test_swagger_ui_renders_every_operation_from_the_service_alone(make_service, tmp_path):
    service = make_service(role="api")
    net_log = tmp_path / "net-log.json"
    dom = run_chromium(tmp_path, "dom", f"--log-net-log={net_log}", "--dump-dom", f"{service.url}/docs").stdout

    rendered = re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', dom)
    assert rendered == PATHS, "Swagger UI lists every route, canonical and alias"
    assert "ai-usage analytics API" in dom
    assert 'id="operations-Analytics-getUsageSummary"' in dom

    requested = page_requests(net_log, service.url)
    assert f"{service.url}/openapi.json" in requested
    assert f"{service.url}/docs/assets/swagger-ui-bundle.js" in requested
    outside = [url for url in requested if not url.startswith(f"{service.url}/")]
    assert not outside, f"the page fetched from elsewhere: {outside}"

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "swagger-ui.png"
    screenshot.unlink(missing_ok=True)
    run_chromium(tmp_path, "shot", "--window-size=1280,1600", f"--screenshot={screenshot}", f"{service.url}/docs")
    assert screenshot.stat().st_size > 20_000, "a rendered page, not a blank one"
