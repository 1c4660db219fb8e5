"""A circuit breaker per provider, its state kept in Redis so every instance sees the same one.

Closed: calls go through; ``failure_threshold`` provider-side failures in a row open it. Open:
calls are refused until ``cooldown_seconds`` have passed, then one probe call is let through
(half-open); its success closes the breaker, its failure opens it again. An operator may force a
breaker open or closed (``override``), which holds until released. Each transition is one Lua
script, so concurrent instances never interleave half-way through one. A breaker is one hash and
each script touches that key only, so a Redis Cluster runs them as one server does.

When Redis does not answer, the breaker fails open (calls go through) and says so in the log:
a dead Redis must not stop the platform from calling providers. After a failure the breakers
leave Redis alone for ``redis_retry_seconds`` (calls go straight through), so a Redis that is down
or unreachable costs neither a timeout per call nor a log line per call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import redis

from core.adapters.redis import RedisClient

log = logging.getLogger(__name__)


class BreakerState(StrEnum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"


class BreakerOverride(StrEnum):
    """What an operator forces: open, closed, or nothing (``auto``: the breaker decides)."""

    OPEN = "open"
    CLOSED = "closed"
    AUTO = "auto"


STATE_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}
"""The number the ``krowoc_circuit_breaker_state`` gauge reports for each state."""


@dataclass(frozen=True)
class BreakerStatus:
    """A provider's breaker as every instance sees it."""

    provider: str
    state: BreakerState
    failures: int
    opened_at: float | None
    override: BreakerOverride

    @property
    def effective(self) -> BreakerState:
        """The state calls obey: the forced one when an operator forced it."""
        if self.override is BreakerOverride.OPEN:
            return BreakerState.OPEN
        if self.override is BreakerOverride.CLOSED:
            return BreakerState.CLOSED
        return self.state

    def as_dict(self) -> dict[str, object]:
        """Return the status as plain values (for audit records and events)."""
        return {
            "provider": self.provider,
            "state": self.state.value,
            "effective": self.effective.value,
            "failures": self.failures,
            "override": self.override.value,
        }


_ALLOW = """
local key, now, cooldown = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local override = redis.call('HGET', key, 'override')
if override == 'open' then return 0 end
if override == 'closed' then return 1 end
local state = redis.call('HGET', key, 'state') or 'closed'
if state == 'closed' then return 1 end
local since = tonumber(redis.call('HGET', key, state == 'open' and 'opened_at' or 'probe_at') or '0')
if now - since >= cooldown then
  redis.call('HSET', key, 'state', 'half_open', 'probe_at', now)
  return 1
end
return 0
"""

_RECORD = """
local key, now, ok, threshold = KEYS[1], tonumber(ARGV[1]), ARGV[2] == '1', tonumber(ARGV[3])
if ok then
  redis.call('HSET', key, 'state', 'closed', 'failures', 0)
  return 'closed'
end
local failures = redis.call('HINCRBY', key, 'failures', 1)
local state = redis.call('HGET', key, 'state') or 'closed'
if state == 'half_open' or (state == 'closed' and failures >= threshold) then
  redis.call('HSET', key, 'state', 'open', 'opened_at', now)
  return 'open'
end
return state
"""


class CircuitBreakers:
    """The breakers of every provider, under ``{prefix}breaker:{provider}`` in Redis."""

    def __init__(
        self,
        client: RedisClient,
        prefix: str,
        *,
        failure_threshold: int = 5,
        cooldown_seconds: float = 15.0,
        redis_retry_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.failure_threshold = failure_threshold
        self.cooldown_seconds = cooldown_seconds
        self.redis_retry_seconds = redis_retry_seconds
        self._clock = clock
        self._allow = client.register_script(_ALLOW)
        self._record = client.register_script(_RECORD)
        self.redis_errors = 0
        self.redis_skipped = 0
        self._skipped_when_lost = 0
        self._skip_until: float | None = None

    def _redis_resting(self) -> bool:
        """Tell whether Redis failed less than ``redis_retry_seconds`` ago (then it is not asked)."""
        if self._skip_until is None:
            return False
        if self._clock() < self._skip_until:
            self.redis_skipped += 1
            return True
        return False

    def _redis_failed(self, provider: str, exc: redis.RedisError) -> None:
        self.redis_errors += 1
        if self._skip_until is None:
            self._skipped_when_lost = self.redis_skipped
            log.warning(
                "circuit breakers cannot reach Redis (%s, for %s): calls go through without a breaker, "
                "Redis is tried again every %.0f s",
                exc,
                provider,
                self.redis_retry_seconds,
            )
        self._skip_until = self._clock() + self.redis_retry_seconds

    def _redis_answered(self) -> None:
        if self._skip_until is not None:
            skipped = self.redis_skipped - self._skipped_when_lost
            log.info("circuit breakers reach Redis again (%d calls went through without one)", skipped)
            self._skip_until = None

    def key(self, provider: str) -> str:
        """Return the Redis key of a provider's breaker."""
        return f"{self.prefix}breaker:{provider}"

    def allow(self, provider: str) -> bool:
        """Tell whether a call to the provider may go out now (may move open to half-open)."""
        if self._redis_resting():
            return True
        try:
            allowed = bool(self._allow(keys=[self.key(provider)], args=[time.time(), self.cooldown_seconds]))
        except redis.RedisError as exc:
            self._redis_failed(provider, exc)
            return True
        self._redis_answered()
        return allowed

    def record(self, provider: str, *, ok: bool) -> None:
        """Record a call's outcome: a success closes the breaker, failures in a row open it."""
        if self._redis_resting():
            return
        try:
            self._record(keys=[self.key(provider)], args=[time.time(), "1" if ok else "0", self.failure_threshold])
        except redis.RedisError as exc:
            self._redis_failed(provider, exc)
            return
        self._redis_answered()

    def status(self, provider: str) -> BreakerStatus:
        """Read a provider's breaker (raises ``redis.RedisError`` when Redis does not answer)."""
        raw = self.client.hgetall(self.key(provider))
        fields = {
            k.decode() if isinstance(k, bytes) else str(k): v.decode() if isinstance(v, bytes) else str(v)
            for k, v in raw.items()
        }
        opened = fields.get("opened_at")
        return BreakerStatus(
            provider=provider,
            state=BreakerState(fields.get("state", "closed")),
            failures=int(fields.get("failures", "0")),
            opened_at=float(opened) if opened else None,
            override=BreakerOverride(fields.get("override", "auto")),
        )

    def set_override(self, provider: str, override: BreakerOverride) -> None:
        """Force a breaker open or closed, or hand it back to its own rule (``auto``)."""
        key = self.key(provider)
        if override is BreakerOverride.AUTO:
            self.client.hdel(key, "override")
        elif override is BreakerOverride.CLOSED:
            # One HSET: no instance sees the override without the reset state.
            self.client.hset(key, mapping={"override": override.value, "state": "closed", "failures": 0})
        else:
            self.client.hset(key, "override", override.value)
