"""Services shared by a whole test module: the API tests only read, so one database serves many cases."""

from __future__ import annotations

from contextlib import ExitStack

import pytest

from tests.support.service import InProcessService, service_settings


@pytest.fixture(scope="module")
def module_services(chdb_dir):
    """Like `make_service`, but the services live until the module's last test."""
    with ExitStack() as running:

        def start(role: str = "all", **overrides) -> InProcessService:
            service = InProcessService(service_settings(chdb_dir, **overrides), role=role)
            running.callback(service.close)
            return service

        yield start
