"""Per-user token buckets in Redis: rate and burst come from the user's tier; one Lua script, atomic.

The script refills the bucket for the time since its last use, takes ``cost`` tokens when there
are enough, and stores the rest, all in one step, so any number of API processes share a bucket
exactly. A ``cost`` of 0 only reads the bucket. Time is Redis's own clock (``TIME``) unless a
clock is injected (tests). The script's one key is the bucket, so on a Redis Cluster it runs on
the node of that user's slot, as atomically as on one server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from core.adapters.redis import RedisClient
from core.adapters.token_bucket import TOKEN_BUCKET
from core.cache.keys import rate_limit_key
from core.domain.models import Tier


@dataclass(frozen=True)
class TierLimit:
    """A tier's sustained rate (tokens per second) and burst (bucket size)."""

    rate_per_second: float
    burst: int


TIER_LIMITS: dict[Tier, TierLimit] = {
    Tier.FREE: TierLimit(rate_per_second=1.0, burst=10),
    Tier.PRO: TierLimit(rate_per_second=5.0, burst=50),
    Tier.TEAM: TierLimit(rate_per_second=20.0, burst=200),
    Tier.ENTERPRISE: TierLimit(rate_per_second=100.0, burst=1000),
}


class BucketState(BaseModel):
    """A user's bucket as the last check left it."""

    model_config = ConfigDict(frozen=True)

    user_id: int
    tier: Tier
    rate_per_second: float
    burst: int
    tokens: float
    allowed: bool = True
    retry_after_ms: int = 0
    untouched: bool = False
    """True when the user has no bucket in Redis (never limited or expired): it is full."""


class RateLimiter:
    """Checks and reads per-user token buckets with one atomic script."""

    def __init__(
        self,
        client: RedisClient,
        prefix: str,
        *,
        limits: dict[Tier, TierLimit] | None = None,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.limits = limits or TIER_LIMITS
        self.clock_ms = clock_ms
        self._script = client.register_script(TOKEN_BUCKET)

    def check(self, user_id: int, tier: Tier, *, cost: int = 1) -> BucketState:
        """Take ``cost`` tokens from the user's bucket if it holds them; say whether the call may go on."""
        if cost < 1:
            raise ValueError("a rate-limit check takes at least one token")
        return self._run(user_id, tier, cost)

    def peek(self, user_id: int, tier: Tier) -> BucketState:
        """Return the user's bucket, refilled to now, without taking a token."""
        return self._run(user_id, tier, 0)

    def reset(self, user_id: int) -> bool:
        """Delete the user's bucket (it starts full again); return whether there was one."""
        return bool(self.client.delete(rate_limit_key(self.prefix, user_id)))

    def _run(self, user_id: int, tier: Tier, cost: int) -> BucketState:
        limit = self.limits[tier]
        now = self.clock_ms() if self.clock_ms is not None else -1
        allowed, tokens, retry_ms, _, fresh = self._script(
            keys=[rate_limit_key(self.prefix, user_id)],
            args=[repr(limit.rate_per_second), limit.burst, cost, now],
        )
        return BucketState(
            user_id=user_id,
            tier=tier,
            rate_per_second=limit.rate_per_second,
            burst=limit.burst,
            tokens=float(tokens),
            allowed=bool(allowed) if cost else True,
            retry_after_ms=int(retry_ms),
            untouched=bool(fresh),
        )
