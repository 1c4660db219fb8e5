"""``HealthService``: every dependency's check for the Health page, the Overview and the API's ``/health``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from core.adapters.db import Database
from core.adapters.redis import RedisClient
from core.audit import AuditLog
from core.config import Settings
from core.domain.models import Actor
from core.domain.rbac import Permission, can
from core.flags.models import UnleashEndpoint
from core.health.checks import HealthCheck, HealthStatus, dependency_checks, overall, run_checks, timed_check

HIDDEN = "details are shown to operators and admins"


class LiveEndpoints(Protocol):
    """Where Unleash and Prometheus are now (they may start or stop while the process runs)."""

    @property
    def unleash(self) -> UnleashEndpoint | None: ...

    @property
    def prometheus_url(self) -> str | None: ...


class HealthService:
    """Checks PostgreSQL, its replica, Redis, Unleash and Prometheus, concurrently, each within its timeout."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        redis: RedisClient,
        *,
        endpoints: Callable[[], LiveEndpoints],
        audit: AuditLog | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.redis = redis
        self.endpoints = endpoints
        self.audit = audit

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
        if self.audit is not None:
            checks.append(self._audit_check)
        return run_checks(checks)

    def _audit_check(self) -> HealthCheck:
        """Check that no admin action is left without a known outcome."""
        audit = self.audit
        assert audit is not None

        def probe() -> str:
            unknown, waiting = audit.unresolved()
            if unknown or waiting:
                raise RuntimeError(
                    f"{unknown} action(s) of the last 24 h ended unknown and {waiting} intent(s) wait for an outcome: "
                    "see the Audit log, outcome unknown"
                )
            return "every recorded intent has its outcome"

        return timed_check("Audit log", probe, required=False)

    def report(self, reader: Actor) -> tuple[HealthStatus, list[HealthCheck]]:
        """Run every check for a reader: details (versions, addresses, errors) only for operators and admins."""
        status, results = self.overall()
        if can(reader, Permission.VIEW_DEPENDENCY_DETAILS):
            return status, results
        return status, [replace(r, detail=HIDDEN) for r in results]

    def overall(self) -> tuple[HealthStatus, list[HealthCheck]]:
        """Run every check now; return the overall status with the checks."""
        results = self.check()
        return overall(results), results
