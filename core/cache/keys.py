"""Cache tiers, namespaces and the named functions that build every cache key.

A key lives under a versioned namespace: ``{prefix}cache:{<namespace>}:v<version>:<name>``. The
``{<namespace>}`` part is a Redis Cluster hash tag, so a namespace's keys and its version counter
share one slot. Invalidating a namespace bumps its version (one INCR, whatever its size); the old
keys are never read again and expire on their TTL.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum


class CacheTier(StrEnum):
    """How long a kind of data may be served from Redis."""

    USER = "user"
    PROMPT = "prompt"
    LEADERBOARD = "leaderboard"


@dataclass(frozen=True)
class TierPolicy:
    """A tier's TTL range: each write draws its TTL uniformly inside it (jitter spreads expiries)."""

    tier: CacheTier
    min_ttl: timedelta
    max_ttl: timedelta

    def draw_ttl_seconds(self, rng: random.Random | None = None) -> int:
        """Draw a TTL in whole seconds inside the tier's range."""
        low, high = int(self.min_ttl.total_seconds()), int(self.max_ttl.total_seconds())
        return (rng or random).randint(low, high)


TIER_POLICIES: dict[CacheTier, TierPolicy] = {
    CacheTier.USER: TierPolicy(CacheTier.USER, timedelta(hours=1), timedelta(hours=4)),
    CacheTier.PROMPT: TierPolicy(CacheTier.PROMPT, timedelta(hours=12), timedelta(hours=24)),
    CacheTier.LEADERBOARD: TierPolicy(CacheTier.LEADERBOARD, timedelta(minutes=5), timedelta(minutes=15)),
}

MEMORY_TTL_SECONDS = 1.0
"""The in-process memory tier keeps a value this long (hot dashboard reads)."""


class Namespace(StrEnum):
    """A family of cache keys that is invalidated as one."""

    USER_PROFILE = "user-profile"
    PROMPT_METADATA = "prompt-metadata"
    LEADERBOARD = "leaderboard"

    @property
    def tier(self) -> CacheTier:
        return NAMESPACE_TIERS[self]


NAMESPACE_TIERS: dict[Namespace, CacheTier] = {
    Namespace.USER_PROFILE: CacheTier.USER,
    Namespace.PROMPT_METADATA: CacheTier.PROMPT,
    Namespace.LEADERBOARD: CacheTier.LEADERBOARD,
}


def namespaces_of(tier: CacheTier) -> list[Namespace]:
    """List the namespaces whose keys live in a tier."""
    return [ns for ns, its_tier in NAMESPACE_TIERS.items() if its_tier == tier]


@dataclass(frozen=True)
class CacheKey:
    """A cache entry's namespace and its name inside the namespace (without prefix or version)."""

    namespace: Namespace
    name: str

    def redis_key(self, prefix: str, version: int) -> str:
        """Return the full Redis key for a namespace version."""
        return f"{namespace_prefix(prefix, self.namespace)}v{version}:{self.name}"


def namespace_prefix(prefix: str, namespace: Namespace) -> str:
    """Return the start every key of a namespace shares (hash-tagged for Redis Cluster)."""
    return f"{prefix}cache:{{{namespace.value}}}:"


def version_key(prefix: str, namespace: Namespace) -> str:
    """Return the key of a namespace's version counter (same slot as its keys)."""
    return f"{namespace_prefix(prefix, namespace)}version"


def stats_key(prefix: str, minute: int) -> str:
    """Return the key of the hit/miss counters of one minute (epoch minutes)."""
    return f"{prefix}cache-stats:{{stats}}:{minute}"


def info_samples_key(prefix: str) -> str:
    """Return the key of the recent Redis INFO samples (for rates over a window)."""
    return f"{prefix}cache-stats:{{stats}}:info"


def rate_limit_key(prefix: str, user_id: int) -> str:
    """Return the key of a user's token bucket."""
    return f"{prefix}ratelimit:{{user:{user_id}}}"


# -- named key functions: the only way code builds a cache key ----------------------------------


def user_profile(user_id: int) -> CacheKey:
    """Key of a user's profile (``core.domain.models.User``)."""
    return CacheKey(Namespace.USER_PROFILE, f"user:{int(user_id)}")


def prompt_metadata(prompt_id: int) -> CacheKey:
    """Key of a prompt's metadata (``core.domain.models.Prompt``)."""
    return CacheKey(Namespace.PROMPT_METADATA, f"prompt:{int(prompt_id)}")


def leaderboard_snapshot(subject_type: str, window: str, limit: int) -> CacheKey:
    """Key of the latest leaderboard snapshot of a subject type and window, top ``limit`` rows."""
    return CacheKey(Namespace.LEADERBOARD, f"snapshot:{subject_type}:{window}:{int(limit)}")


def leaderboard_read(name: str, *parts: object) -> CacheKey:
    """Key of any other leaderboard read, named by the caller (for example a page's query and its arguments)."""
    return CacheKey(Namespace.LEADERBOARD, ":".join([name, *(str(p) for p in parts)]))
