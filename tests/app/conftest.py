"""Fixtures of the page tests: the dashboard, run in-process, pointed at a database of the test's choice."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from core.bootstrap import Services, build_services
from core.config import get_settings
from tests.support.apptest import point_dashboard_at
from tests.support.settings import settings_for


@pytest.fixture()
def dashboard_on(prefix: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Services]]:
    """Point the in-process dashboard at a database with this test's own key prefix; return services on it.

    A key prefix of the test's own keeps another test's cached profiles from leaking in.
    """
    built: list[Services] = []

    def point(database_url: str) -> Services:
        point_dashboard_at(monkeypatch, database_url, redis_url, prefix)
        services = build_services(settings_for(database_url, redis_url, prefix))
        built.append(services)
        return services

    yield point
    for services in built:
        services.close()
    get_settings.cache_clear()
