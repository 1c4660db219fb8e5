"""Cache-aside on Redis with an in-process memory tier, single flight and a circuit breaker.

``Cache.get_or_load(key, load, adapter)`` answers from the memory tier (about one second), then
from Redis, then calls ``load`` and stores what it returns, ``None`` included: a cached ``None``
is stored as JSON ``null`` and told apart from a miss (Redis answers nothing for a miss). Any
Redis error fails open to ``load``, is counted, and trips the breaker after a few in a row so a
dead Redis costs nothing while it is open.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import redis
from pydantic import TypeAdapter

from core.adapters.redis import RedisClient
from core.cache.keys import (
    MEMORY_TTL_SECONDS,
    TIER_POLICIES,
    CacheKey,
    CacheTier,
    Namespace,
    namespaces_of,
    version_key,
)
from core.cache.stats import MEMORY_LAYER, CacheCounters, Outcome

log = logging.getLogger(__name__)

T = TypeVar("T")
_MISSING: Any = object()


class CircuitBreaker:
    """Opens after ``threshold`` failures in a row; lets one trial through after ``cooldown`` seconds."""

    def __init__(self, *, threshold: int = 3, cooldown: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self.threshold = threshold
        self.cooldown = cooldown
        self.clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        """Tell whether calls are being refused right now."""
        with self._lock:
            return self._opened_at is not None and self.clock() - self._opened_at < self.cooldown

    def allow(self) -> bool:
        """Tell whether a call may go to Redis (closed, or half-open after the cooldown)."""
        with self._lock:
            if self._opened_at is None:
                return True
            if self.clock() - self._opened_at >= self.cooldown:
                # Half-open: this call is the trial; others keep failing fast until it answers.
                self._opened_at = self.clock()
                return True
            return False

    def succeeded(self) -> None:
        """Record a call that worked: the breaker closes."""
        with self._lock:
            self._failures = 0
            self._opened_at = None

    def failed(self) -> None:
        """Record a failed call: the breaker opens after ``threshold`` in a row."""
        with self._lock:
            self._failures += 1
            if self._failures >= self.threshold:
                self._opened_at = self.clock()


class MemoryTier:
    """A small per-process LRU whose entries live ``ttl`` seconds."""

    def __init__(self, *, ttl: float = MEMORY_TTL_SECONDS, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        """Return the value kept for a key, or ``_MISSING``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return _MISSING
            if entry[0] < time.monotonic():
                del self._entries[key]
                return _MISSING
            return entry[1]

    def put(self, key: str, value: Any) -> None:
        """Keep a value for ``ttl`` seconds."""
        with self._lock:
            self._entries[key] = (time.monotonic() + self.ttl, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> int:
        """Drop every entry; return how many there were."""
        with self._lock:
            dropped = len(self._entries)
            self._entries.clear()
            return dropped

    def __len__(self) -> int:
        return len(self._entries)


class Cache:
    """Cache-aside reads under versioned namespaces; Redis failures never reach the caller."""

    def __init__(
        self,
        client: RedisClient,
        prefix: str,
        *,
        memory: MemoryTier | None = None,
        counters: CacheCounters | None = None,
        breaker: CircuitBreaker | None = None,
        version_ttl: float = MEMORY_TTL_SECONDS,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.memory = memory or MemoryTier()
        self.counters = counters or CacheCounters(client, prefix)
        self.breaker = breaker or CircuitBreaker()
        self.counters.paused = lambda: self.breaker.is_open
        self.version_ttl = version_ttl
        self._versions: dict[Namespace, tuple[float, int]] = {}
        self._flights: dict[str, Future[Any]] = {}
        self._flights_lock = threading.Lock()
        self.on_first_memory_use: Callable[[], None] | None = None

    # -- reads ----------------------------------------------------------------------------------

    def get_or_load(
        self,
        key: CacheKey,
        load: Callable[[], T],
        adapter: TypeAdapter[T],
        *,
        use_memory: bool = True,
    ) -> T:
        """Return the cached value of ``key``, else ``load()``'s result, which is then cached (None too)."""
        namespace = key.namespace
        version = self._version(namespace)
        full = key.redis_key(self.prefix, version if version is not None else 0)
        if use_memory:
            kept = self.memory.get(full)
            if kept is not _MISSING:
                self.counters.count(MEMORY_LAYER, namespace.value, Outcome.HIT)
                return kept  # type: ignore[no-any-return]
            self.counters.count(MEMORY_LAYER, namespace.value, Outcome.MISS)
        value: T = self._single_flight(full, lambda: self._from_redis_or_load(key, full, version, load, adapter))
        if use_memory:
            self._remember(full, value)
        return value

    def _from_redis_or_load(
        self, key: CacheKey, full: str, version: int | None, load: Callable[[], T], adapter: TypeAdapter[T]
    ) -> T:
        namespace = key.namespace
        tier = namespace.tier.value
        if version is None:
            # Redis is down or the breaker is open: go to the source.
            self.counters.count(tier, namespace.value, Outcome.ERROR)
            return load()
        try:
            raw = self.client.get(full)
        except redis.RedisError as exc:
            self._redis_failed(exc)
            self.counters.count(tier, namespace.value, Outcome.ERROR)
            return load()
        self.breaker.succeeded()
        if raw is not None:
            try:
                value = adapter.validate_json(raw)
            except ValueError:
                log.warning("cache entry %s does not match its type; reloading it", full)
            else:
                self.counters.count(tier, namespace.value, Outcome.HIT)
                return value
        self.counters.count(tier, namespace.value, Outcome.MISS)
        value = load()
        self._store(full, namespace.tier, adapter.dump_json(value))
        return value

    def _single_flight(self, full: str, work: Callable[[], T]) -> T:
        """Run ``work`` once for concurrent callers of one key; the others wait for its result."""
        with self._flights_lock:
            flight = self._flights.get(full)
            leader = flight is None
            if flight is None:
                flight = self._flights[full] = Future()
        if not leader:
            return flight.result()  # type: ignore[no-any-return]
        try:
            value = work()
        except BaseException as exc:
            flight.set_exception(exc)
            raise
        else:
            flight.set_result(value)
            return value
        finally:
            with self._flights_lock:
                self._flights.pop(full, None)

    def _store(self, full: str, tier: CacheTier, payload: bytes) -> None:
        if not self.breaker.allow():
            return
        try:
            self.client.set(full, payload, ex=TIER_POLICIES[tier].draw_ttl_seconds())
        except redis.RedisError as exc:
            self._redis_failed(exc)
        else:
            self.breaker.succeeded()

    def _remember(self, full: str, value: Any) -> None:
        hook = self.on_first_memory_use
        if hook is not None:
            self.on_first_memory_use = None
            hook()
        self.memory.put(full, value)

    def _redis_failed(self, exc: Exception) -> None:
        log.info("redis error, reading from the source: %s", exc.__class__.__name__)
        self.breaker.failed()

    def _version(self, namespace: Namespace) -> int | None:
        """Return the namespace's current version (kept ~1 s in process), or None when Redis is unusable."""
        now = time.monotonic()
        known = self._versions.get(namespace)
        if known is not None and now - known[0] < self.version_ttl:
            return known[1]
        if not self.breaker.allow():
            return None
        try:
            raw = self.client.get(version_key(self.prefix, namespace))
        except redis.RedisError as exc:
            self._redis_failed(exc)
            return None
        self.breaker.succeeded()
        version = int(raw) if raw is not None else 0
        self._versions[namespace] = (now, version)
        return version

    # -- writes and invalidation ----------------------------------------------------------------

    def forget(self, key: CacheKey) -> None:
        """Delete one entry (after its source changed); a Redis error is logged, not raised."""
        version = self._version(key.namespace)
        self.memory.clear()
        if version is None:
            return
        try:
            self.client.delete(key.redis_key(self.prefix, version))
        except redis.RedisError as exc:
            self._redis_failed(exc)

    def bump_namespace(self, namespace: Namespace) -> int:
        """Invalidate every key of a namespace in O(1) by bumping its version; return the new version.

        Raises ``redis.RedisError`` when Redis does not answer: an invalidation must not pass silently.
        """
        version = int(self.client.incr(version_key(self.prefix, namespace)))
        self._versions[namespace] = (time.monotonic(), version)
        self.memory.clear()
        return version

    def bump_tier(self, tier: CacheTier) -> dict[Namespace, int]:
        """Invalidate every namespace of a tier; return their new versions."""
        return {namespace: self.bump_namespace(namespace) for namespace in namespaces_of(tier)}

    def current_versions(self) -> dict[Namespace, int]:
        """Return every namespace's version as Redis holds it now (raises on a Redis error)."""
        keys = [version_key(self.prefix, ns) for ns in Namespace]
        values = [self.client.get(k) for k in keys]  # one slot per namespace: no MGET across slots
        return {ns: int(v) if v is not None else 0 for ns, v in zip(Namespace, values, strict=True)}

    def drop_local(self) -> int:
        """Forget this process's memory tier and known versions; return how many entries were dropped."""
        self._versions.clear()
        return self.memory.clear()
