"""The tiered cache: key functions, cache-aside reads, counters, the operator's cache service and the Redis client."""

from core.cache.keys import CacheKey, CacheTier, Namespace
from core.cache.reads import CachedLeaderboards, CachedPrompts, CachedUsers, LeaderboardSnapshot
from core.cache.store import Cache

__all__ = [
    "Cache",
    "CacheKey",
    "CacheTier",
    "CachedLeaderboards",
    "CachedPrompts",
    "CachedUsers",
    "LeaderboardSnapshot",
    "Namespace",
]
