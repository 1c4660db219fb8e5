"""``HealthService``: every dependency's check for the Health page, the Overview and the API's ``/health``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from core.adapters.db import Database
from core.adapters.redis import RedisClient
from core.config import Settings
from core.flags.models import UnleashEndpoint
from core.health.checks import HealthCheck, HealthStatus, dependency_checks, overall, run_checks


class LiveEndpoints(Protocol):
    """Where Unleash and Prometheus are now (they may start or stop while the process runs)."""

    @property
    def unleash(self) -> UnleashEndpoint | None: ...

    @property
    def prometheus_url(self) -> str | None: ...


class HealthService:
    """Checks PostgreSQL, its replica, Redis, Unleash and Prometheus, concurrently, each within its timeout."""

    def __init__(
        self, settings: Settings, db: Database, redis: RedisClient, *, endpoints: Callable[[], LiveEndpoints]
    ) -> None:
        self.settings = settings
        self.db = db
        self.redis = redis
        self.endpoints = endpoints

    def check(self) -> list[HealthCheck]:
        """Run every dependency's check now; return them in a fixed order."""
        where = self.endpoints()
        unleash = where.unleash
        checks = dependency_checks(
            self.settings,
            self.db.primary,
            self.db.replica,
            self.redis,
            unleash.base_url if unleash else None,
            where.prometheus_url,
        )
        return run_checks(checks)

    def overall(self) -> tuple[HealthStatus, list[HealthCheck]]:
        """Run every check now; return the overall status with the checks."""
        results = self.check()
        return overall(results), results
