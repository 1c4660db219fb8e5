"""Admin events on a real Redis stream: one consumer group per instance, memory tiers dropped, Pub/Sub notices."""

from __future__ import annotations

import threading
import time
from typing import Any

import redis
from pydantic import TypeAdapter

from core.adapters.events import (
    STREAM,
    AdminEvent,
    AdminEventConsumer,
    ChangeNotices,
    RedisEvents,
    dropping_on_invalidation,
    stream_key,
)
from core.adapters.redis import make_redis
from core.bootstrap import Services, build_services
from core.cache import keys
from core.cache.service import CacheService, NamespaceInvalidation, TierInvalidation
from core.cache.store import Cache
from core.domain.models import Role
from tests.support.polling import eventually
from tests.support.settings import actor, settings_for

NAME = TypeAdapter(str | None)


def test_the_stream_name_is_the_one_audit_publishes_on(client: redis.Redis, prefix: str) -> None:
    assert RedisEvents(client, prefix).stream == stream_key(prefix) == f"{prefix}{STREAM}"


def test_every_instance_reads_every_event_through_its_own_group(client: redis.Redis, prefix: str) -> None:
    seen: dict[str, list[str]] = {"a": [], "b": []}
    a = AdminEventConsumer(client, prefix, on_event=lambda e: seen["a"].append(e.kind), instance="a")
    b = AdminEventConsumer(client, prefix, on_event=lambda e: seen["b"].append(e.kind), instance="b")
    a.ensure_group()
    b.ensure_group()
    RedisEvents(client, prefix).publish("cache.invalidate_tier", {"target_id": "user"})
    RedisEvents(client, prefix).publish("user.reset_rate_limit", {"target_id": "42"})

    assert [e.kind for e in a.poll(block_ms=100)] == ["cache.invalidate_tier", "user.reset_rate_limit"]
    assert [e.kind for e in b.poll(block_ms=100)] == ["cache.invalidate_tier", "user.reset_rate_limit"]
    assert a.poll(block_ms=10) == []  # acknowledged: not delivered again
    assert seen == {
        "a": ["cache.invalidate_tier", "user.reset_rate_limit"],
        "b": ["cache.invalidate_tier", "user.reset_rate_limit"],
    }
    groups = {g["name"].decode(): g for g in client.xinfo_groups(stream_key(prefix))}
    assert groups["dashboard-a"]["pending"] == 0


def test_an_invalidation_on_one_instance_drops_the_other_instances_memory_tier(
    client: redis.Redis, redis_url: str, prefix: str, make_database: object
) -> None:
    other_client = make_redis(redis_url)
    here_services = build_services(settings_for(make_database(), redis_url, prefix))  # type: ignore[operator]
    there = Cache(other_client, prefix, version_ttl=3600)  # trusts its known version: only the event can tell it
    listener = AdminEventConsumer(other_client, prefix, on_event=dropping_on_invalidation(there.drop_local))
    try:
        listener.ensure_group()
        key = keys.leaderboard_read("top-users", "week")
        assert there.get_or_load(key, lambda: "before", NAME) == "before"
        CacheService(here_services.cache, here_services.audit).invalidate_namespace(
            actor(Role.OPERATOR), NamespaceInvalidation(namespace="leaderboard", reason="recomputed")
        )
        assert there.get_or_load(key, lambda: "after", NAME) == "before"  # not told yet

        [event] = listener.poll(block_ms=1000)

        assert event.kind == "cache.invalidate_namespace" and event.payload["target_id"] == "leaderboard"
        assert len(there.memory) == 0
        assert there.get_or_load(key, lambda: "after", NAME) == "after"
    finally:
        here_services.close()
        other_client.close()


def test_the_reader_thread_starts_with_the_memory_tier_and_stops_with_the_services(isolated: Services) -> None:
    assert not isolated.admin_events.running
    isolated.cached_users.profile(1)  # keeps a (None) answer in memory
    assert isolated.admin_events.running
    assert eventually(
        lambda: any(
            g["name"].decode() == isolated.admin_events.group
            for g in isolated.redis.xinfo_groups(isolated.admin_events.stream)
        )
    )
    assert isolated.cached_users.profile(1) is None
    assert len(isolated.cache.memory) == 1

    isolated.cache_admin.invalidate_tier(actor(Role.ADMIN), TierInvalidation(tier="prompt", reason="prompt edits"))
    isolated.cached_users.profile(1)
    RedisEvents(isolated.redis, isolated.cache.prefix).publish("cache.invalidate_tier", {"target_id": "user"})
    assert eventually(lambda: len(isolated.cache.memory) == 0)
    assert isolated.admin_events.handled >= 1

    group = isolated.admin_events.group
    isolated.admin_events.stop()
    assert not isolated.admin_events.running
    assert group not in {g["name"].decode() for g in isolated.redis.xinfo_groups(isolated.admin_events.stream)}


def test_groups_of_long_dead_instances_are_removed(client: redis.Redis, prefix: str) -> None:
    stream = stream_key(prefix)
    client.xgroup_create(stream, "dashboard-dead", id="$", mkstream=True)
    client.xgroup_createconsumer(stream, "dashboard-dead", "reader")
    client.xgroup_create(stream, "analytics", id="$")  # not ours: left alone
    live = AdminEventConsumer(client, prefix, on_event=lambda e: None, instance="live")
    import core.adapters.events as events

    original = events.STALE_GROUP_IDLE_MS
    events.STALE_GROUP_IDLE_MS = -1  # every consumer counts as long idle
    try:
        live.ensure_group()
    finally:
        events.STALE_GROUP_IDLE_MS = original
    names = {g["name"].decode() for g in client.xinfo_groups(stream)}
    assert names == {"dashboard-live", "analytics"}


def test_admin_actions_send_a_pubsub_notice(isolated: Services) -> None:
    notices = ChangeNotices(isolated.redis, isolated.cache.prefix)
    received: list[dict[str, Any]] = []
    stop = threading.Event()
    listener = threading.Thread(target=notices.listen, args=(received.append,), kwargs={"stop": stop})
    listener.start()
    try:
        assert eventually(lambda: int(isolated.redis.pubsub_numsub(notices.channel)[0][1]) == 1)
        isolated.cache_admin.invalidate_namespace(
            actor(Role.OPERATOR), NamespaceInvalidation(namespace="user-profile", reason="test")
        )
        assert notices.publish("leaderboards_recomputed", {"window": "week"}) == 1
        assert eventually(lambda: len(received) == 2)
    finally:
        stop.set()
        listener.join()
    assert received[0]["kind"] == "cache.invalidate_namespace" and received[0]["target_id"] == "user-profile"
    assert received[1] == {"kind": "leaderboards_recomputed", "window": "week"}


def test_a_dead_redis_never_breaks_the_reader_or_the_publisher(prefix: str) -> None:
    dead = make_redis("redis://127.0.0.1:1/0")
    try:
        consumer = AdminEventConsumer(dead, prefix, on_event=lambda e: None)
        consumer.start()
        assert consumer.running
        consumer.stop()
        assert not consumer.running
        assert ChangeNotices(dead, prefix).publish("x", {}) == 0
        RedisEvents(dead, prefix).publish("x", {})  # logged, not raised
    finally:
        dead.close()


def test_events_decode_their_payload() -> None:
    from core.adapters.events import _event

    event = _event(b"1-0", {b"kind": b"cache.invalidate_tier", b"payload": b'{"target_id": "user"}'})
    assert event == AdminEvent(id="1-0", kind="cache.invalidate_tier", payload={"target_id": "user"})


def test_a_deleted_stream_is_not_brought_back_by_a_reader_but_the_next_event_is_read(
    client: redis.Redis, prefix: str
) -> None:
    seen: list[str] = []
    consumer = AdminEventConsumer(client, prefix, on_event=lambda e: seen.append(e.kind))
    consumer.start()
    try:
        stream = stream_key(prefix)
        assert eventually(lambda: client.exists(stream) == 1)
        client.delete(stream)  # as after a Redis restart without persistence, or a clean-up
        time.sleep(1.5)  # the reader notices and waits for the stream to come back
        assert client.exists(stream) == 0

        RedisEvents(client, prefix).publish("cache.invalidate_tier", {"target_id": "user"})

        assert eventually(lambda: seen == ["cache.invalidate_tier"])
    finally:
        consumer.stop()
        client.delete(stream_key(prefix))
