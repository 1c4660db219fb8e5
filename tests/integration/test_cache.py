"""The cache against a real Redis/Valkey: cache-aside, cached None, single flight, fail-open, counters."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
import redis
from pydantic import BaseModel, TypeAdapter

from core.adapters.redis import make_redis
from core.cache import keys
from core.cache.keys import TIER_POLICIES, CacheKey, CacheTier, Namespace
from core.cache.stats import MEMORY_LAYER, CacheCounters, Outcome
from core.cache.store import Cache, CircuitBreaker, MemoryTier
from tests.support.polling import eventually


class Profile(BaseModel):
    id: int
    name: str


PROFILE = TypeAdapter(Profile | None)
DOWN_URL = "redis://127.0.0.1:1/0"


@pytest.fixture()
def cache(client: redis.Redis, prefix: str) -> Cache:
    return Cache(client, prefix)


class Source:
    """A stand-in for PostgreSQL that counts its loads."""

    def __init__(self, value: Profile | None, delay: float = 0.0) -> None:
        self.value = value
        self.delay = delay
        self.loads = 0
        self._lock = threading.Lock()

    def __call__(self) -> Profile | None:
        with self._lock:
            self.loads += 1
        if self.delay:
            time.sleep(self.delay)
        return self.value


def totals(counters: CacheCounters, tier: str, namespace: str) -> tuple[int, int, int]:
    counters.flush()
    for row in counters.window(5):
        if (row.tier, row.namespace) == (tier, namespace):
            return row.hits, row.misses, row.errors
    return 0, 0, 0


def test_keys_are_hash_tagged_per_namespace_and_versioned() -> None:
    key = keys.user_profile(42)
    assert key == CacheKey(Namespace.USER_PROFILE, "user:42")
    assert key.redis_key("krowoc:", 3) == "krowoc:cache:{user-profile}:v3:user:42"
    assert keys.version_key("krowoc:", Namespace.USER_PROFILE) == "krowoc:cache:{user-profile}:version"
    assert keys.leaderboard_snapshot("user", "week", 50).name == "snapshot:user:week:50"
    assert {ns.tier for ns in Namespace} == set(CacheTier)


def test_a_value_is_loaded_once_then_served_from_redis_with_a_ttl_inside_its_tier(
    cache: Cache, client: redis.Redis, prefix: str
) -> None:
    source = Source(Profile(id=1, name="Ada"))
    key = keys.user_profile(1)

    first = cache.get_or_load(key, source, PROFILE, use_memory=False)
    second = cache.get_or_load(key, source, PROFILE, use_memory=False)

    assert first == second == Profile(id=1, name="Ada")
    assert source.loads == 1
    ttl = client.ttl(key.redis_key(prefix, 0))
    policy = TIER_POLICIES[CacheTier.USER]
    assert policy.min_ttl.total_seconds() - 2 <= ttl <= policy.max_ttl.total_seconds()
    assert totals(cache.counters, "user", "user-profile") == (1, 1, 0)


def test_ttls_are_spread_over_the_tier_range() -> None:
    policy = TIER_POLICIES[CacheTier.LEADERBOARD]
    drawn = {policy.draw_ttl_seconds() for _ in range(200)}
    assert min(drawn) >= 300 and max(drawn) <= 900
    assert len(drawn) > 50


def test_a_cached_none_is_a_hit_not_a_miss(cache: Cache, client: redis.Redis, prefix: str) -> None:
    source = Source(None)
    key = keys.user_profile(404)

    assert cache.get_or_load(key, source, PROFILE, use_memory=False) is None
    assert cache.get_or_load(key, source, PROFILE, use_memory=False) is None

    assert source.loads == 1
    assert client.get(key.redis_key(prefix, 0)) == b"null"
    assert totals(cache.counters, "user", "user-profile") == (1, 1, 0)


def test_the_memory_tier_answers_within_a_second_without_redis(cache: Cache, client: redis.Redis, prefix: str) -> None:
    source = Source(Profile(id=2, name="Grace"))
    key = keys.user_profile(2)
    cache.get_or_load(key, source, PROFILE)
    client.delete(key.redis_key(prefix, 0))  # gone from Redis, still in memory

    assert cache.get_or_load(key, source, PROFILE) == Profile(id=2, name="Grace")
    assert source.loads == 1
    assert totals(cache.counters, MEMORY_LAYER, "user-profile") == (1, 1, 0)


def test_memory_entries_expire() -> None:
    memory = MemoryTier(ttl=0.05)
    memory.put("k", 1)
    assert memory.get("k") == 1
    time.sleep(0.1)
    assert memory.get("k") != 1


def test_concurrent_misses_load_once(cache: Cache) -> None:
    source = Source(Profile(id=3, name="Linus"), delay=0.3)
    key = keys.user_profile(3)
    results: list[Profile | None] = []
    start = threading.Barrier(16)

    def read() -> None:
        start.wait()
        results.append(cache.get_or_load(key, source, PROFILE, use_memory=False))

    threads = [threading.Thread(target=read) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert source.loads == 1
    assert results == [Profile(id=3, name="Linus")] * 16


def test_a_loader_error_reaches_every_waiter_and_nothing_is_cached(
    cache: Cache, client: redis.Redis, prefix: str
) -> None:
    key = keys.user_profile(5)

    def broken() -> Profile | None:
        raise LookupError("the source failed")

    with pytest.raises(LookupError):
        cache.get_or_load(key, broken, PROFILE)
    assert client.exists(key.redis_key(prefix, 0)) == 0
    assert cache.get_or_load(key, Source(Profile(id=5, name="ok")), PROFILE) == Profile(id=5, name="ok")


def test_bumping_the_namespace_version_invalidates_all_its_keys_at_once(cache: Cache) -> None:
    first = Source(Profile(id=6, name="old"))
    second = Source(Profile(id=6, name="new"))
    leaderboard = Source(Profile(id=7, name="untouched"))
    cache.get_or_load(keys.user_profile(6), first, PROFILE)
    cache.get_or_load(keys.leaderboard_read("x", 7), leaderboard, PROFILE)

    assert cache.bump_namespace(Namespace.USER_PROFILE) == 1

    assert cache.get_or_load(keys.user_profile(6), second, PROFILE) == Profile(id=6, name="new")
    assert cache.get_or_load(keys.leaderboard_read("x", 7), leaderboard, PROFILE, use_memory=False).name == "untouched"
    assert (first.loads, second.loads, leaderboard.loads) == (1, 1, 1)


def test_a_tier_bump_moves_every_namespace_of_the_tier(cache: Cache) -> None:
    versions = cache.bump_tier(CacheTier.LEADERBOARD)
    assert versions == {Namespace.LEADERBOARD: 1}
    assert cache.current_versions()[Namespace.LEADERBOARD] == 1
    assert cache.current_versions()[Namespace.USER_PROFILE] == 0


def test_another_instance_sees_a_bump_within_a_second(client: redis.Redis, prefix: str, redis_url: str) -> None:
    other_client = make_redis(redis_url)
    try:
        here, there = Cache(client, prefix), Cache(other_client, prefix)
        key = keys.prompt_metadata(9)
        there.get_or_load(key, Source(Profile(id=9, name="v0")), PROFILE)
        here.bump_namespace(Namespace.PROMPT_METADATA)
        fresh = Profile(id=9, name="v1")
        # ``there`` keeps the namespace's version and the value for about a second, then reads both again.
        assert eventually(lambda: there.get_or_load(key, Source(fresh), PROFILE) == fresh, timeout=1.5)
    finally:
        other_client.close()


def test_forget_drops_one_key(cache: Cache) -> None:
    cache.get_or_load(keys.user_profile(10), Source(Profile(id=10, name="before")), PROFILE)
    cache.forget(keys.user_profile(10))
    after = Source(Profile(id=10, name="after"))
    assert cache.get_or_load(keys.user_profile(10), after, PROFILE).name == "after"  # type: ignore[union-attr]
    assert after.loads == 1


def test_a_stored_value_of_another_shape_is_reloaded(cache: Cache, client: redis.Redis, prefix: str) -> None:
    key = keys.user_profile(11)
    client.set(key.redis_key(prefix, 0), b'{"unexpected": true}')
    source = Source(Profile(id=11, name="fresh"))
    assert cache.get_or_load(key, source, PROFILE, use_memory=False) == Profile(id=11, name="fresh")
    assert source.loads == 1


def test_redis_down_fails_open_counts_errors_and_opens_the_breaker(prefix: str) -> None:
    dead = make_redis(DOWN_URL)
    breaker = CircuitBreaker(threshold=2, cooldown=60)
    cache = Cache(dead, prefix, breaker=breaker)
    source = Source(Profile(id=12, name="from postgres"))
    try:
        for _ in range(5):
            assert cache.get_or_load(keys.user_profile(12), source, PROFILE, use_memory=False) == source.value
        assert source.loads == 5
        assert breaker.is_open
        assert not breaker.allow()
        pending = {field: count for (_, field), count in cache.counters._pending.items()}
        assert pending["user|user-profile|error"] == 5
        assert cache.counters.flush() is False
    finally:
        dead.close()


def test_the_breaker_lets_a_trial_through_after_the_cooldown_and_closes_on_success() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=1, cooldown=5, clock=lambda: now[0])
    breaker.failed()
    assert not breaker.allow()
    now[0] = 6
    assert breaker.allow()  # the trial
    assert not breaker.allow()  # others wait for it
    breaker.succeeded()
    assert breaker.allow() and not breaker.is_open


def test_counters_are_bucketed_per_minute_for_5_minute_and_1_hour_ratios(client: redis.Redis, prefix: str) -> None:
    now = [datetime(2026, 11, 26, 12, 0, tzinfo=UTC).timestamp()]
    counters = CacheCounters(client, prefix, clock=lambda: now[0], flush_every=3600)
    for _ in range(3):
        counters.count("user", "user-profile", Outcome.HIT)
    counters.count("user", "user-profile", Outcome.MISS)
    now[0] += 30 * 60  # half an hour later
    counters.count("user", "user-profile", Outcome.HIT)
    counters.count("user", "user-profile", Outcome.ERROR)
    assert counters.flush()

    [last_5] = counters.window(5, now=now[0])
    [last_hour] = counters.window(60, now=now[0])
    assert (last_5.hits, last_5.misses, last_5.errors) == (1, 0, 1)
    assert (last_hour.hits, last_hour.misses, last_hour.errors) == (4, 1, 1)
    assert last_hour.hit_ratio == pytest.approx(0.8)
    assert len(counters.per_minute(60, now=now[0])) == 2
    ttl = client.ttl(keys.stats_key(prefix, int(now[0] // 60)))
    assert 0 < ttl <= 2 * 3600
