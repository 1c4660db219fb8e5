"""The platform's pulse for the Overview: cache hit ratio, flags changed in 24 h, and dependency health."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from core.audit import AuditLog
from core.cache.service import CacheService
from core.domain.actions import AdminAction
from core.domain.exceptions import DatabaseUnavailable, RedisUnavailable
from core.health.checks import HealthStatus, overall
from core.health.service import HealthService

FLAG_CHANGES = (AdminAction.FLAG_TOGGLE, AdminAction.FLAG_ROLLOUT)


@dataclass(frozen=True)
class PlatformPulse:
    """What the Overview shows beside the executions: cache, flags and dependency health."""

    cache_hit_ratio: float | None
    cache_down: bool
    flags_changed_24h: int | None
    health: HealthStatus
    unhealthy: tuple[str, ...]


class PulseReader:
    """Reads the pulse from the cache counters, the audit log and the health checks; a part that is down says so."""

    def __init__(self, cache: CacheService, audit: AuditLog, health: HealthService) -> None:
        self.cache = cache
        self.audit = audit
        self.health = health

    def read(self, *, now: datetime | None = None) -> PlatformPulse:
        """Return the cache hit ratio (5 min), flags changed in 24 h and the dependencies' overall health."""
        ratio: float | None = None
        cache_down = False
        try:
            counts = self.cache.counts(5)
            hits = sum(c.hits for c in counts)
            decided = hits + sum(c.misses for c in counts)
            ratio = hits / decided if decided else None
        except RedisUnavailable:
            cache_down = True
        flags_changed: int | None
        try:
            since = (now or datetime.now(UTC)) - timedelta(hours=24)
            changed = self.audit.changed_targets(actions=FLAG_CHANGES, since=since)
            flags_changed = len(changed)
        except DatabaseUnavailable:
            flags_changed = None
        results = self.health.check()
        return PlatformPulse(
            cache_hit_ratio=ratio,
            cache_down=cache_down,
            flags_changed_24h=flags_changed,
            health=overall(results),
            unhealthy=tuple(r.component for r in results if r.status is HealthStatus.FAIL),
        )
