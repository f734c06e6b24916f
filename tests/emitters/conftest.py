"""Fixtures for the emitter tests: the provider stub and services that live for a whole module."""

from __future__ import annotations

import pytest

from tests.emitters.provider_stub import ProviderStub
from tests.support.service import InProcessService, service_settings


@pytest.fixture(scope="module")
def provider_stub():
    with ProviderStub() as stub:
        yield stub


@pytest.fixture(scope="module")
def start_service(chdb_dir):
    """Start in-process services (fresh database each) that live for the whole module."""
    started: list[InProcessService] = []

    def start(**overrides) -> InProcessService:
        service = InProcessService(service_settings(chdb_dir, **overrides))
        started.append(service)
        return service

    yield start
    for service in started:
        service.close()
