"""The operator's cache service and the cached reads, against real PostgreSQL and Redis."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import redis
from sqlalchemy import insert

from core.adapters.redis import make_redis
from core.adapters.tables import LeaderboardSnapshotRow, PromptRow, UserRow
from core.bootstrap import Services, build_services
from core.cache import keys
from core.cache.inspection import mask_secrets
from core.cache.keys import Namespace
from core.cache.models import MemoryLevel, RedisFigures
from core.cache.service import CacheService, NamespaceInvalidation, TierInvalidation
from core.cache.store import Cache
from core.domain.exceptions import InvalidInput, RedisUnavailable
from core.domain.models import Actor, AuditOutcome, Role, Tier, User
from core.domain.rbac import PermissionDenied
from tests.support.settings import AUDITOR, actor, settings_for

DOWN_URL = "redis://127.0.0.1:1/0"


def _add_user(services: Services, user_id: int, tier: str = "pro") -> None:
    with services.db.write() as conn:
        conn.execute(insert(UserRow).values(id=user_id, email=f"u{user_id}@example.com", display_name="U", tier=tier))


def test_user_profiles_come_from_postgres_once_then_from_the_cache(isolated: Services) -> None:
    _add_user(isolated, 1)
    first = isolated.cached_users.profile(1)
    assert isinstance(first, User) and first.tier == Tier.PRO

    with isolated.db.write() as conn:  # a change the cache has not been told about
        conn.execute(UserRow.__table__.update().where(UserRow.id == 1).values(tier="team"))
    assert isolated.cached_users.profile(1).tier == Tier.PRO  # type: ignore[union-attr]

    isolated.cached_users.forget(1)
    assert isolated.cached_users.profile(1).tier == Tier.TEAM  # type: ignore[union-attr]
    assert isolated.cached_users.profile(999) is None
    assert isolated.redis.get(keys.user_profile(999).redis_key(isolated.cache.prefix, 0)) == b"null"


def test_prompt_metadata_and_leaderboards_read_through_the_cache(isolated: Services) -> None:
    now = datetime.now(UTC)
    with isolated.db.write() as conn:
        conn.execute(insert(PromptRow).values(id=7, owner_id=1, title="Summarise", tags=["a"]))
        for rank in (1, 2):
            conn.execute(
                insert(LeaderboardSnapshotRow).values(
                    computed_at=now,
                    subject_type="user",
                    time_window="week",
                    rank=rank,
                    subject_id=10 + rank,
                    avg_score=Decimal("0.9") / rank,
                    executions=50,
                    min_executions=20,
                )
            )
    assert isolated.cached_prompts.metadata(7).title == "Summarise"  # type: ignore[union-attr]
    snapshot = isolated.cached_leaderboards.latest("user", "week", limit=10)
    assert snapshot is not None and [e.subject_id for e in snapshot.entries] == [11, 12]
    assert isolated.cached_leaderboards.latest("prompt", "day") is None
    with pytest.raises(InvalidInput):
        isolated.cached_leaderboards.latest("user", "year")  # type: ignore[arg-type]
    isolated.cache.counters.flush()
    seen = {(c.tier, c.namespace) for c in isolated.cache.counters.window(5)}
    assert {("prompt", "prompt-metadata"), ("leaderboard", "leaderboard")} <= seen


def test_an_operator_invalidates_a_namespace_with_a_reason_and_it_is_audited(isolated: Services) -> None:
    operator = actor(Role.OPERATOR)
    _add_user(isolated, 2)
    isolated.cached_users.profile(2)

    result = isolated.cache_admin.invalidate_namespace(
        operator, NamespaceInvalidation(namespace="user-profile", reason="stale tiers")
    )

    assert result.versions == {"user-profile": 1}
    assert isolated.cache.current_versions()[Namespace.USER_PROFILE] == 1
    [record] = isolated.audit.latest(AUDITOR)
    assert (record.action, record.outcome, record.reason) == (
        "cache.invalidate_namespace",
        AuditOutcome.SUCCESS,
        "stale tiers",
    )
    assert (record.target_type, record.target_id, record.before, record.after) == (
        "cache_namespace",
        "user-profile",
        {"version": 0},
        {"version": 1},
    )
    [(_, fields)] = isolated.redis.xrevrange(f"{isolated.cache.prefix}admin-events", count=1)
    assert fields[b"kind"] == b"cache.invalidate_namespace"


def test_a_tier_invalidation_is_audited_too(isolated: Services) -> None:
    result = isolated.cache_admin.invalidate_tier(
        actor(Role.ADMIN), TierInvalidation(tier="leaderboard", reason="recomputed")
    )
    assert result.versions == {"leaderboard": 1}
    [record] = isolated.audit.latest(AUDITOR)
    assert (record.action, record.target_id, record.after) == (
        "cache.invalidate_tier",
        "leaderboard",
        {"versions": {"leaderboard": 1}},
    )


@pytest.mark.parametrize(
    ("who", "namespace", "reason", "error", "outcome"),
    [
        (Role.SUPPORT, "user-profile", "x", PermissionDenied, AuditOutcome.DENIED),
        (Role.VIEWER, "user-profile", "x", PermissionDenied, AuditOutcome.DENIED),
        (Role.OPERATOR, "user-profile", "  ", InvalidInput, AuditOutcome.INVALID),
        (Role.OPERATOR, "sessions", "x", InvalidInput, AuditOutcome.INVALID),
    ],
)
def test_refused_invalidations_change_nothing_and_are_audited(
    isolated: Services, who: Role, namespace: str, reason: str, error: type[Exception], outcome: AuditOutcome
) -> None:
    with pytest.raises(error):
        isolated.cache_admin.invalidate_namespace(actor(who), NamespaceInvalidation(namespace=namespace, reason=reason))
    assert set(isolated.cache.current_versions().values()) == {0}
    assert isolated.audit.latest(AUDITOR)[0].outcome == outcome


def test_an_invalidation_with_redis_down_fails_clearly_and_is_audited(isolated: Services) -> None:
    dead = make_redis(DOWN_URL)
    try:
        service = CacheService(Cache(dead, isolated.cache.prefix), isolated.audit)
        with pytest.raises(RedisUnavailable, match="Redis is down: nothing was invalidated"):
            service.invalidate_tier(actor(Role.OPERATOR), TierInvalidation(tier="user", reason="flush"))
        assert isolated.audit.latest(AUDITOR)[0].outcome == AuditOutcome.FAILED
        assert not service.is_up()
        with pytest.raises(RedisUnavailable):
            service.redis_figures()
        with pytest.raises(RedisUnavailable):
            service.sample_keys()
    finally:
        dead.close()


def test_redis_figures_and_rates_from_deltas(isolated: Services) -> None:
    service = isolated.cache_admin
    figures = service.redis_figures()
    assert figures.used_memory > 0 and figures.keys >= 0 and figures.eviction_policy
    # An earlier sample (as a previous page view would have kept it), then the rates since.
    earlier = figures.model_copy(
        update={
            "sampled_at": datetime.fromtimestamp(figures.sampled_at.timestamp() - 60, UTC),
            "keyspace_hits": figures.keyspace_hits - 30,
            "keyspace_misses": figures.keyspace_misses - 10,
            "expired_keys": max(0, figures.expired_keys - 120),
        }
    )
    isolated.redis.delete(keys.info_samples_key(isolated.cache.prefix))
    service._keep_sample(earlier)
    rates = service.redis_rates(figures, window_seconds=300)
    assert rates is not None and rates.seconds == pytest.approx(60, abs=1)
    assert rates.hit_ratio == pytest.approx(0.75)
    assert rates.expirations_per_second == pytest.approx(min(120, figures.expired_keys) / 60, abs=0.05)


@pytest.mark.parametrize(
    ("used", "maximum", "level"),
    [
        (10, 0, MemoryLevel.UNBOUNDED),
        (79, 100, MemoryLevel.OK),
        (80, 100, MemoryLevel.WARNING),
        (95, 100, MemoryLevel.ALARM),
    ],
)
def test_memory_levels(used: int, maximum: int, level: MemoryLevel) -> None:
    figures = RedisFigures(
        sampled_at=datetime.now(UTC),
        server="redis",
        version="7",
        uptime_seconds=1,
        used_memory=used,
        maxmemory=maximum,
        eviction_policy="allkeys-lru",
        fragmentation_ratio=1.0,
        connected_clients=1,
        ops_per_second=0,
        evicted_keys=0,
        expired_keys=0,
        keyspace_hits=0,
        keyspace_misses=0,
        total_commands=0,
        keys=0,
    )
    assert figures.memory_level == level


def test_a_bounded_sample_counts_namespaces_and_ttls(isolated: Services) -> None:
    prefix = isolated.cache.prefix
    pipe = isolated.redis.pipeline(transaction=False)
    for i in range(300):
        pipe.set(keys.user_profile(i).redis_key(prefix, 0), b"null", ex=3600 + i)
    for i in range(50):
        pipe.set(keys.leaderboard_read("top", i).redis_key(prefix, 0), b"null", ex=600)
    pipe.execute()
    isolated.cache.bump_namespace(Namespace.LEADERBOARD)  # the 50 leaderboard keys are now stale

    sample = isolated.cache_admin.sample_keys(limit=10_000)
    by_name = {ns.namespace: ns for ns in sample.namespaces}
    if sample.complete:
        assert by_name["user-profile"].sampled_keys == 300
        assert by_name["leaderboard"].stale_keys == 50 and by_name["leaderboard"].current_keys == 0
    users = by_name["user-profile"]
    assert users.estimated_keys >= users.sampled_keys
    assert users.ttl_min is not None and 3500 <= users.ttl_min <= users.ttl_max <= 3600 + 299  # type: ignore[operator]

    small = isolated.cache_admin.sample_keys(limit=5, scan_count=5)
    assert small.scanned <= 5 and (small.complete or small.share < 1)
    with pytest.raises(InvalidInput):
        isolated.cache_admin.sample_keys(limit=20_000)


def test_key_lookup_masks_secrets_and_refuses_foreign_keys(isolated: Services) -> None:
    prefix = isolated.cache.prefix
    operator = actor(Role.OPERATOR)
    key = f"{prefix}cache:{{user-profile}}:v0:user:77"
    isolated.redis.set(
        key, json.dumps({"id": 77, "api_key": "sk-live-abcdefghijkl", "note": "Bearer abcdefghijklmnop"}), ex=100
    )

    found = isolated.cache_admin.lookup_key(operator, key)
    assert found.exists and found.type == "string" and 0 < found.ttl_seconds <= 100  # type: ignore[operator]
    assert found.size_bytes and found.size_bytes > 0
    assert "sk-live" not in found.preview and "abcdefghijklmnop" not in found.preview  # type: ignore[operator]
    assert '"id": 77' in found.preview  # type: ignore[operator]
    assert not isolated.cache_admin.lookup_key(operator, f"{prefix}cache:nothing-here").exists
    with pytest.raises(InvalidInput, match="Only this dashboard's keys"):
        isolated.cache_admin.lookup_key(operator, "someone-else:session:1")
    with pytest.raises(InvalidInput):
        isolated.cache_admin.lookup_key(operator, "  ")


def test_key_lookup_is_for_operators_audited_and_never_shows_a_session(isolated: Services) -> None:
    prefix = isolated.cache.prefix
    isolated.users.sessions.open(5, "sid-1", json.dumps({"ip": "10.0.0.9", "csrf": "t0ken", "email": "a@b.c"}))
    session_key = isolated.users.sessions.session_key("sid-1")
    cache_key = keys.user_profile(5).redis_key(prefix, 0)
    isolated.redis.set(cache_key, '{"id": 5}', ex=100)

    for role in (Role.VIEWER, Role.SUPPORT):
        with pytest.raises(PermissionDenied):
            isolated.cache_admin.lookup_key(actor(role), cache_key)
    for key in (session_key, isolated.users.sessions.index_key(5), f"{prefix}admin-events"):
        with pytest.raises(InvalidInput, match="cache, statistics and rate-limit keys"):
            isolated.cache_admin.lookup_key(actor(Role.ADMIN), key)
    assert isolated.cache_admin.lookup_key(actor(Role.OPERATOR), cache_key).exists

    rows = isolated.audit.search(AUDITOR, action="cache.lookup_key", limit=10)
    outcomes = sorted(row.outcome.value for row in rows)
    assert outcomes == ["denied", "denied", "invalid", "invalid", "invalid", "success"]
    success = next(row for row in rows if row.outcome is AuditOutcome.SUCCESS)
    assert success.target_id == cache_key and success.after == {"exists": True, "type": "string", "length": 9}
    assert all("t0ken" not in json.dumps(row.model_dump(mode="json")) for row in rows)


def test_a_hash_lookup_reads_one_page_of_fields(isolated: Services) -> None:
    key = f"{isolated.cache.prefix}cache-stats:{{stats}}:big"
    isolated.redis.hset(key, mapping={f"field-{n}": n for n in range(5_000)})
    found = isolated.cache_admin.lookup_key(actor(Role.OPERATOR), key)
    assert found.type == "hash" and found.length == 5_000
    shown = found.preview or ""
    assert 0 < shown.count("field-") <= 60


def test_mask_secrets_walks_nested_values() -> None:
    masked = mask_secrets({"user": {"password": "hunter2", "name": "Ada"}, "tokens": ["x"], "text": "token=abc123"})
    assert masked == {"user": {"password": "•••", "name": "Ada"}, "tokens": "•••", "text": "•••"}


def test_services_keep_working_from_postgres_when_redis_is_down(make_database: object, redis_prefix: str) -> None:
    url = make_database()  # type: ignore[operator]
    built = build_services(settings_for(url, DOWN_URL, redis_prefix))
    try:
        _add_user(built, 3, tier="free")
        assert built.cached_users.profile(3).tier == Tier.FREE  # type: ignore[union-attr]
        assert built.cached_users.profile(3).tier == Tier.FREE  # type: ignore[union-attr]
        assert not built.cache_admin.is_up()
        with pytest.raises(RedisUnavailable):
            built.cache_admin.counts(5)
    finally:
        built.close()


def test_a_viewer_actor_can_look_but_not_invalidate(isolated: Services) -> None:
    viewer: Actor = actor(Role.VIEWER)
    assert isolated.cache_admin.counts(5) is not None
    with pytest.raises(PermissionDenied):
        isolated.cache_admin.invalidate_tier(viewer, TierInvalidation(tier="user", reason="no"))
    assert isinstance(isolated.redis, redis.Redis)
