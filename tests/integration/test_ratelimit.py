"""Token buckets in one Lua script on a real Redis/Valkey: exact under contention, right refill, audited reset."""

from __future__ import annotations

import threading

import pytest
import redis
from sqlalchemy import insert

from core.adapters.tables import UserRow
from core.bootstrap import Services, build_services
from core.cache.keys import rate_limit_key
from core.domain.exceptions import InvalidInput
from core.domain.models import AuditOutcome, Role, Tier
from core.domain.rbac import PermissionDenied
from core.ratelimit import TIER_LIMITS, RateLimiter, RateLimitReset, TierLimit
from tests.support.settings import AUDITOR, actor, settings_for


class Clock:
    """Milliseconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now


def hammer(limiter: RateLimiter, *, user_id: int, tier: Tier, threads: int, each: int) -> int:
    allowed = 0
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def work() -> None:
        nonlocal allowed
        start.wait()
        mine = sum(limiter.check(user_id, tier).allowed for _ in range(each))
        with lock:
            allowed += mine

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return allowed


def test_many_threads_get_exactly_the_burst_through_a_frozen_clock(client: redis.Redis, prefix: str) -> None:
    limiter = RateLimiter(client, prefix, clock_ms=Clock())
    assert hammer(limiter, user_id=1, tier=Tier.PRO, threads=16, each=10) == TIER_LIMITS[Tier.PRO].burst


def test_many_threads_get_exactly_the_burst_through_on_redis_time(client: redis.Redis, prefix: str) -> None:
    # A refill of one token per ~3 hours: whatever the run takes, no token comes back during it.
    limiter = RateLimiter(client, prefix, limits={Tier.FREE: TierLimit(rate_per_second=0.0001, burst=25)})
    assert hammer(limiter, user_id=2, tier=Tier.FREE, threads=8, each=20) == 25


def test_the_bucket_refills_at_the_tier_rate_and_never_beyond_the_burst(client: redis.Redis, prefix: str) -> None:
    clock = Clock()
    limiter = RateLimiter(client, prefix, clock_ms=clock)
    free = TIER_LIMITS[Tier.FREE]  # 1 token per second, burst 10
    assert all(limiter.check(3, Tier.FREE).allowed for _ in range(free.burst))
    denied = limiter.check(3, Tier.FREE)
    assert not denied.allowed and denied.retry_after_ms == 1000

    clock.now += 2_500  # 2.5 tokens come back
    assert [limiter.check(3, Tier.FREE).allowed for _ in range(3)] == [True, True, False]
    assert limiter.peek(3, Tier.FREE).tokens == pytest.approx(0.5)

    clock.now += 3_600_000  # an hour idle: full, not more
    assert limiter.peek(3, Tier.FREE).tokens == free.burst


def test_peek_takes_nothing_and_a_new_bucket_is_full(client: redis.Redis, prefix: str) -> None:
    limiter = RateLimiter(client, prefix, clock_ms=Clock())
    fresh = limiter.peek(4, Tier.TEAM)
    assert fresh.untouched and fresh.tokens == TIER_LIMITS[Tier.TEAM].burst
    assert client.exists(rate_limit_key(prefix, 4)) == 0
    limiter.check(4, Tier.TEAM, cost=5)
    assert limiter.peek(4, Tier.TEAM).tokens == TIER_LIMITS[Tier.TEAM].burst - 5
    assert client.pttl(rate_limit_key(prefix, 4)) > 0


def test_a_check_must_take_a_token(client: redis.Redis, prefix: str) -> None:
    with pytest.raises(ValueError):
        RateLimiter(client, prefix).check(5, Tier.FREE, cost=0)


@pytest.fixture()
def isolated(isolated: Services) -> Services:
    """Add one free-tier user (id 42) to the shared isolated services."""
    with isolated.db.write() as conn:
        conn.execute(insert(UserRow).values(id=42, email="u42@example.com", display_name="U", tier="free"))
    return isolated


def test_support_sees_and_resets_a_bucket_and_the_reset_is_audited(isolated: Services) -> None:
    support = actor(Role.SUPPORT)
    for _ in range(10):
        isolated.rate_limits.check(42)
    assert not isolated.rate_limits.check(42).allowed
    seen = isolated.rate_limits.bucket(actor(Role.VIEWER), 42)
    assert seen.tier == Tier.FREE and seen.tokens < 1

    after = isolated.rate_limits.reset(support, RateLimitReset(user_id=42, reason="customer blocked by a retry loop"))

    assert after.tokens == TIER_LIMITS[Tier.FREE].burst
    assert isolated.rate_limits.check(42).allowed
    [record] = isolated.audit.latest(AUDITOR)
    assert (record.action, record.outcome, record.target_id) == ("user.reset_rate_limit", AuditOutcome.SUCCESS, "42")
    assert record.before is not None and record.before["tokens"] < 1
    assert record.after == {"tokens": 10, "burst": 10, "tier": "free"}


def test_resets_are_refused_for_viewers_without_reason_or_for_unknown_users(isolated: Services) -> None:
    with pytest.raises(PermissionDenied):
        isolated.rate_limits.reset(actor(Role.VIEWER), RateLimitReset(user_id=42, reason="x"))
    assert isolated.audit.latest(AUDITOR)[0].outcome == AuditOutcome.DENIED
    with pytest.raises(InvalidInput):
        isolated.rate_limits.reset(actor(Role.SUPPORT), RateLimitReset(user_id=42, reason=""))
    assert isolated.audit.latest(AUDITOR)[0].outcome == AuditOutcome.INVALID
    with pytest.raises(InvalidInput, match="no user with id 7"):
        isolated.rate_limits.reset(actor(Role.SUPPORT), RateLimitReset(user_id=7, reason="x"))
    assert isolated.audit.latest(AUDITOR)[0].outcome == AuditOutcome.INVALID


def test_checks_fail_open_when_redis_is_down(make_database: object, prefix: str) -> None:
    built = build_services(settings_for(make_database(), "redis://127.0.0.1:1/0", prefix))  # type: ignore[operator]
    try:
        with built.db.write() as conn:
            conn.execute(insert(UserRow).values(id=1, email="u1@example.com", display_name="U", tier="pro"))
        assert built.rate_limits.check(1).allowed
    finally:
        built.close()
