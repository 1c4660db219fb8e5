"""Hit, miss and error counters per tier and namespace: per-minute buckets in Redis, and Prometheus.

Counts are gathered in process and flushed to Redis every few seconds in one pipeline, into a hash
per minute (``HINCRBY``), kept for two hours; a hit ratio over the last 5 minutes or the last hour
is the sum of the minute buckets it spans. Prometheus counters carry the same labels. The minute
hashes share the ``{stats}`` hash tag, so on a Redis Cluster a flush or a read goes to one node.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis

from core.adapters.redis import RedisClient
from core.adapters.telemetry import CACHE_REQUESTS
from core.cache.keys import stats_key

log = logging.getLogger(__name__)

STATS_RETENTION_SECONDS = 2 * 3600
FLUSH_EVERY_SECONDS = 2.0


class Outcome(StrEnum):
    HIT = "hit"
    MISS = "miss"
    ERROR = "error"


MEMORY_LAYER = "memory"
"""The tier label of the in-process memory tier's counts."""


@dataclass(frozen=True)
class TierCounts:
    """Counts of one tier and namespace over a window."""

    tier: str
    namespace: str
    hits: int = 0
    misses: int = 0
    errors: int = 0

    @property
    def lookups(self) -> int:
        return self.hits + self.misses + self.errors

    @property
    def hit_ratio(self) -> float | None:
        """Hits per lookup that reached a verdict (hit or miss); None when there was none."""
        decided = self.hits + self.misses
        return self.hits / decided if decided else None


def _field(tier: str, namespace: str, outcome: Outcome) -> str:
    return f"{tier}|{namespace}|{outcome.value}"


class CacheCounters:
    """Counts lookups in process and flushes them to Redis per minute; never raises on a Redis error."""

    def __init__(
        self,
        client: RedisClient,
        prefix: str,
        *,
        clock: Callable[[], float] = time.time,
        flush_every: float = FLUSH_EVERY_SECONDS,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.clock = clock
        self.flush_every = flush_every
        self._pending: Tally[tuple[int, str]] = Tally()
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()
        self._children: dict[tuple[str, str, Outcome], Any] = {}
        self.paused: Callable[[], bool] = lambda: False
        """Tells whether to hold the counts back (the cache's breaker is open: Redis is known down)."""

    def count(self, tier: str, namespace: str, outcome: Outcome) -> None:
        """Count one lookup; flush when the last flush is older than ``flush_every`` seconds."""
        label = (tier, namespace, outcome)
        child = self._children.get(label)
        if child is None:
            child = self._children[label] = CACHE_REQUESTS.labels(tier, namespace, outcome.value)
        child.inc()
        minute = int(self.clock() // 60)
        with self._lock:
            self._pending[(minute, _field(tier, namespace, outcome))] += 1
            due = time.monotonic() - self._last_flush >= self.flush_every
        if due:
            self.flush()

    def flush(self) -> bool:
        """Write the pending counts to Redis in one pipeline; return whether they were written."""
        if self.paused():
            oldest = int(self.clock() // 60) - STATS_RETENTION_SECONDS // 60
            with self._lock:
                self._last_flush = time.monotonic()
                for stale in [key for key in self._pending if key[0] < oldest]:
                    del self._pending[stale]
            return False
        with self._lock:
            pending, self._pending = self._pending, Tally()
            self._last_flush = time.monotonic()
        if not pending:
            return True
        try:
            pipe = self.client.pipeline(transaction=False)
            minutes = set()
            for (minute, field), amount in pending.items():
                pipe.hincrby(stats_key(self.prefix, minute), field, amount)
                minutes.add(minute)
            for minute in minutes:
                pipe.expire(stats_key(self.prefix, minute), STATS_RETENTION_SECONDS)
            pipe.execute()
            return True
        except redis.RedisError as exc:
            # Counts of a Redis outage are lost from Redis (Prometheus still has them).
            log.info("cache counters not flushed: %s", exc.__class__.__name__)
            return False

    def window(self, minutes: int, *, now: float | None = None) -> list[TierCounts]:
        """Return the counts per tier and namespace over the last ``minutes`` minutes (this one included)."""
        current = int((self.clock() if now is None else now) // 60)
        pipe = self.client.pipeline(transaction=False)
        for minute in range(current - minutes + 1, current + 1):
            pipe.hgetall(stats_key(self.prefix, minute))
        totals: Tally[str] = Tally()
        for bucket in pipe.execute():
            for field, amount in bucket.items():
                totals[field.decode() if isinstance(field, bytes) else str(field)] += int(amount)
        return _group(totals)

    def per_minute(self, minutes: int, *, now: float | None = None) -> list[tuple[int, TierCounts]]:
        """Return (epoch minute, counts) per minute, tier and namespace over the last ``minutes`` minutes."""
        current = int((self.clock() if now is None else now) // 60)
        span = list(range(current - minutes + 1, current + 1))
        pipe = self.client.pipeline(transaction=False)
        for minute in span:
            pipe.hgetall(stats_key(self.prefix, minute))
        rows: list[tuple[int, TierCounts]] = []
        for minute, bucket in zip(span, pipe.execute(), strict=True):
            totals: Tally[str] = Tally(
                {(k.decode() if isinstance(k, bytes) else str(k)): int(v) for k, v in bucket.items()}
            )
            rows.extend((minute, counts) for counts in _group(totals))
        return rows


def _group(totals: Tally[str]) -> list[TierCounts]:
    grouped: dict[tuple[str, str], dict[str, int]] = {}
    for field, amount in totals.items():
        tier, _, rest = field.partition("|")
        namespace, _, outcome = rest.partition("|")
        grouped.setdefault((tier, namespace), {})[outcome] = amount
    return [
        TierCounts(
            tier=tier,
            namespace=namespace,
            hits=counts.get(Outcome.HIT.value, 0),
            misses=counts.get(Outcome.MISS.value, 0),
            errors=counts.get(Outcome.ERROR.value, 0),
        )
        for (tier, namespace), counts in sorted(grouped.items())
    ]
