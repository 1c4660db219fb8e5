"""Support's view of a user's rate limit: check it (the API), see it and reset it (audited)."""

from __future__ import annotations

import logging

import redis
from pydantic import Field

from core.audit import AuditLog
from core.cache.reads import CachedUsers
from core.domain.actions import AdminAction
from core.domain.exceptions import InvalidInput, RedisUnavailable
from core.domain.models import MAX_ID, ActionRequest, Actor, Tier
from core.domain.rbac import Permission, require
from core.ratelimit.limiter import BucketState, RateLimiter

log = logging.getLogger(__name__)


class RateLimitReset(ActionRequest):
    """Refill a user's rate-limit bucket, saying why (the reason goes into the audit log)."""

    user_id: int = Field(ge=1, le=MAX_ID)


class RateLimitService:
    """A user's token bucket: check it (the API), see it and reset it (support, audited)."""

    def __init__(self, limiter: RateLimiter, users: CachedUsers, audit: AuditLog) -> None:
        self.limiter = limiter
        self.users = users
        self.audit = audit

    def _tier_of(self, user_id: int) -> Tier:
        user = self.users.profile(user_id)
        if user is None:
            raise InvalidInput(f"There is no user with id {user_id}.")
        return user.tier

    def check(self, user_id: int, *, cost: int = 1) -> BucketState:
        """Take tokens from a user's bucket for a request; fail open (allow) when Redis is down."""
        tier = self._tier_of(user_id)
        try:
            return self.limiter.check(user_id, tier, cost=cost)
        except redis.RedisError as exc:
            log.warning("rate limit not checked, Redis unavailable: %s", exc.__class__.__name__)
            limit = self.limiter.limits[tier]
            return BucketState(
                user_id=user_id, tier=tier, rate_per_second=limit.rate_per_second, burst=limit.burst, tokens=0
            )

    def bucket(self, actor: Actor, user_id: int) -> BucketState:
        """Return a user's bucket as it stands now, refilled to now, without taking a token."""
        require(actor, Permission.VIEW_DASHBOARD)
        tier = self._tier_of(user_id)
        try:
            return self.limiter.peek(user_id, tier)
        except redis.RedisError as exc:
            raise RedisUnavailable(f"Redis is down: the rate-limit bucket cannot be read ({exc}).") from exc

    def reset(self, actor: Actor, request: RateLimitReset) -> BucketState:
        """Refill a user's bucket (delete it), as an audited admin action."""
        user_id = request.user_id
        with self.audit.action(
            actor,
            AdminAction.USER_RESET_RATE_LIMIT,
            permission=Permission.RESET_RATE_LIMIT,
            target_type="user",
            target_id=str(user_id),
            reason=request.reason,
            external=True,
        ) as act:
            tier = self._tier_of(user_id)
            try:
                before = self.limiter.peek(user_id, tier)
                self.limiter.reset(user_id)
                after = self.limiter.peek(user_id, tier)
            except redis.RedisError as exc:
                raise RedisUnavailable(f"Redis is down: the bucket was not reset ({exc.__class__.__name__}).") from exc
            act.before = {"tokens": round(before.tokens, 3), "burst": before.burst, "tier": tier.value}
            act.after = {"tokens": round(after.tokens, 3), "burst": after.burst, "tier": tier.value}
        return after
