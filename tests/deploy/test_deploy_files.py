"""docker-compose.yml, the Dockerfile and the README agree with the service's real
settings, commands and ports. (No Docker engine here: the files are parsed.)"""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml

from app.cli import SERVE_VARIABLES, build_parser
from app.gunicorn_config import graceful_timeout
from app.settings import environment_variables
from clickhouse.client import Target
from tests.support.service import REPO

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
DOCKERFILE = (REPO / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
KNOWN = environment_variables() | set(SERVE_VARIABLES)
SERVICES = {name: service for name, service in COMPOSE["services"].items() if name != "clickhouse"}
PLACEHOLDER = re.compile(r"\$\{([A-Z_]+)")


def arguments(service: dict) -> "argparse.Namespace":  # noqa: F821
    return build_parser().parse_args(service["command"])


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_service_commands_are_valid_ai_usage_commands(name):
    args = arguments(SERVICES[name])
    assert args.command in ("serve", "migrate")
    assert SERVICES[name]["image"] == "ai-usage:local" and SERVICES[name]["build"] == "."


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_service_environment_uses_only_real_setting_names(name):
    unknown = set(SERVICES[name]["environment"]) - KNOWN
    assert not unknown, f"{name} sets variables the service never reads: {unknown}"


def test_published_ports_are_the_ports_served():
    for name, service in SERVICES.items():
        args = arguments(service)
        if args.command != "serve":
            continue
        served = {args.port} | ({args.grpc_port} if args.grpc_port else set())
        published = {int(mapping.split(":")[1]) for mapping in service.get("ports", [])}
        assert published == served, name
        assert args.host == "0.0.0.0"
        assert str(args.port) == service["environment"]["AI_USAGE_PORT"], "the healthcheck reads AI_USAGE_PORT"
    assert arguments(SERVICES["ingest"]).role == "ingest" and arguments(SERVICES["api"]).role == "api"


def test_clickhouse_url_points_at_the_compose_clickhouse():
    clickhouse = COMPOSE["services"]["clickhouse"]
    image, _, tag = clickhouse["image"].partition(":")
    assert image == "clickhouse/clickhouse-server" and tag and tag != "latest", "pin the server version"
    url = SERVICES["ingest"]["environment"]["CLICKHOUSE_URL"]
    target = Target.parse(url.replace("${CLICKHOUSE_PASSWORD:?set CLICKHOUSE_PASSWORD}", "secret"))
    assert not target.embedded and target.database == clickhouse["environment"]["CLICKHOUSE_DB"]
    assert url.startswith(f"http://{clickhouse['environment']['CLICKHOUSE_USER']}:")
    assert "clickhouse-data:/var/lib/clickhouse" in clickhouse["volumes"] and "healthcheck" in clickhouse


def test_order_of_start_and_graceful_stop():
    assert SERVICES["migrate"]["depends_on"]["clickhouse"]["condition"] == "service_healthy"
    for name in ("ingest", "api"):
        assert SERVICES[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        grace = int(SERVICES[name]["stop_grace_period"].rstrip("s"))
        assert grace > graceful_timeout, "compose must wait for gunicorn's graceful shutdown"


def test_keys_are_required_not_defaulted():
    environment = SERVICES["ingest"]["environment"]
    for name in ("AI_USAGE_API_KEYS", "AI_USAGE_INGEST_KEYS"):
        assert environment[name].startswith(f"${{{name}:?"), f"{name} must be required"


def test_dockerfile_installs_the_packages_and_runs_the_console_command():
    packages = {pattern.rstrip("*") for pattern in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = set(re.findall(r"^COPY (\w+) \./\1$", DOCKERFILE, re.MULTILINE))
    assert packages <= copied, f"not copied into the image: {packages - copied}"
    assert "ai-usage" in PYPROJECT["project"]["scripts"]
    assert 'ENTRYPOINT ["ai-usage"]' in DOCKERFILE
    exposed = {int(port) for line in re.findall(r"^EXPOSE (.+)$", DOCKERFILE, re.MULTILINE) for port in line.split()}
    published = {int(m.split(":")[1]) for s in SERVICES.values() for m in s.get("ports", [])}
    assert published <= exposed
    assert set(re.findall(r"\b(AI_USAGE_[A-Z_]+)=", DOCKERFILE)) <= KNOWN


def test_the_readme_documents_every_setting():
    readme = (REPO / "README.md").read_text()
    missing = sorted(name for name in KNOWN if f"`{name}`" not in readme)
    assert not missing, f"README configuration table lacks {missing}"
