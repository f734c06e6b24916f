"""Services shared by a whole test module: the API tests only read, so one database serves many cases."""

from __future__ import annotations

import pytest

from tests.support.service import InProcessService, service_settings


@pytest.fixture(scope="module")
def module_services(chdb_dir):
    """Start in-process services that live until the module's last test (see `make_service`)."""
    started: list[InProcessService] = []

    def start(role: str = "all", **overrides) -> InProcessService:
        service = InProcessService(service_settings(chdb_dir, **overrides), role=role)
        started.append(service)
        return service

    yield start
    for service in started:
        service.close()
