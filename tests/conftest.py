from __future__ import annotations

from contextlib import ExitStack

import pytest

from tests.support.service import InProcessService, service_settings


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory):
    """The one embedded ClickHouse data directory of this test process."""
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture
def make_service(chdb_dir):
    """Start in-process services (each with a fresh database); all closed after the test."""
    started: list[InProcessService] = []

    def start(role: str = "all", **overrides) -> InProcessService:
        service = InProcessService(service_settings(chdb_dir, **overrides), role=role)
        started.append(service)
        return service

    yield start
    for service in started:
        service.close()


@pytest.fixture(scope="module")
def module_services(chdb_dir):
    """Like `make_service`, but the services live until the module's last test."""
    with ExitStack() as running:

        def start(role: str = "all", **overrides) -> InProcessService:
            service = InProcessService(service_settings(chdb_dir, **overrides), role=role)
            running.callback(service.close)
            return service

        yield start


@pytest.fixture
def service(make_service):
    return make_service()
