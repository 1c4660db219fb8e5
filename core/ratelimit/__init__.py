"""Per-user token buckets in Redis, and support's audited reset."""

from core.ratelimit.limiter import TIER_LIMITS, BucketState, RateLimiter, TierLimit
from core.ratelimit.service import RateLimitReset, RateLimitService

__all__ = ["TIER_LIMITS", "BucketState", "RateLimitReset", "RateLimitService", "RateLimiter", "TierLimit"]
