"""The composition root: builds every service from settings, once, in one place."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Literal, overload

import redis

from core.audit import AuditLog, EventPublisher
from core.cache import Cache, CachedLeaderboards, CachedPrompts, CachedUsers
from core.cache.client import ClusterClient, RedisClient, cluster_client
from core.cache.service import CacheService, RateLimitService
from core.config import Settings, get_settings
from core.db import Database
from core.events import AdminEventConsumer, dropping_on_invalidation, notices_channel
from core.flags.service import FlagService, build_flag_service
from core.leaderboards import LeaderboardService
from core.prometheus import PrometheusClient
from core.prometheus_server import resolve_prometheus_url
from core.providers.breaker import CircuitBreakers
from core.providers.service import ProviderHealth
from core.providers.simulated import PROVIDERS
from core.ratelimit import RateLimiter
from core.stack import resolve_urls
from core.users import RedisUserSessions, UserService

log = logging.getLogger(__name__)

ADMIN_EVENTS_STREAM = "admin-events"


REDIS_TIMEOUT_SECONDS = 0.5


@overload
def make_redis(url: str, *, cluster: Literal[False] = False) -> redis.Redis: ...


@overload
def make_redis(url: str, *, cluster: Literal[True]) -> ClusterClient: ...


@overload
def make_redis(url: str, *, cluster: bool) -> RedisClient: ...


def make_redis(url: str, *, cluster: bool = False) -> RedisClient:
    """Builds a Redis client with short timeouts so a dead Redis never stalls a page.

    With ``cluster``, ``url`` names any node of a Redis Cluster and the client finds the others; it
    is built even while the cluster is down and fails like a single server (``redis.RedisError``).
    """
    if cluster:
        return cluster_client(url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS)
    return redis.Redis.from_url(
        url,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        health_check_interval=30,
        decode_responses=False,
    )


class RedisEvents:
    """Publishes admin events on the ``{prefix}admin-events`` stream; a Redis failure is logged, not raised."""

    def __init__(self, client: RedisClient, prefix: str) -> None:
        self.client = client
        self.stream = f"{prefix}{ADMIN_EVENTS_STREAM}"
        self.notices = notices_channel(prefix)

    def publish(self, kind: str, payload: dict[str, Any]) -> None:
        try:
            self.client.xadd(
                self.stream,
                {"kind": kind, "payload": json.dumps(payload, default=str)},
                maxlen=10_000,
                approximate=True,
            )
            self.client.publish(self.notices, json.dumps({"kind": kind, **payload}, default=str))
        except redis.RedisError as exc:
            log.warning("admin event %s not published: %s", kind, exc)


@dataclass
class Services:
    settings: Settings
    db: Database
    redis: RedisClient
    events: EventPublisher
    audit: AuditLog
    users: UserService
    leaderboards: LeaderboardService
    cache: Cache
    cached_users: CachedUsers
    cached_prompts: CachedPrompts
    cached_leaderboards: CachedLeaderboards
    cache_admin: CacheService
    rate_limits: RateLimitService
    admin_events: AdminEventConsumer
    provider_health: ProviderHealth
    prometheus: PrometheusClient | None
    flags: FlagService

    def close(self) -> None:
        """Releases pooled connections."""
        self.admin_events.stop()
        self.flags.close()
        self.cache.counters.flush()
        self.db.dispose()
        self.redis.close()


def _prometheus(settings: Settings) -> PrometheusClient | None:
    url = resolve_prometheus_url(settings)
    return PrometheusClient(url) if url else None


def build_services(settings: Settings | None = None) -> Services:
    """Builds the services from settings (the real adapters; tests pass test settings)."""
    settings = settings or get_settings()
    urls = resolve_urls(settings)
    db = Database.from_urls(
        urls.database_url,
        settings.database_replica_url,
        pool_size=settings.pool_size,
        statement_timeout_ms=settings.statement_timeout_ms,
        replica_retry_seconds=settings.replica_retry_seconds,
    )
    client = make_redis(urls.redis_url, cluster=settings.redis_cluster)
    events = RedisEvents(client, settings.redis_key_prefix)
    audit = AuditLog(db, events)
    cache = Cache(client, settings.redis_key_prefix)
    # Read the admin events (drop the memory tier on an invalidation) once this process uses that tier.
    admin_events = AdminEventConsumer(
        client, settings.redis_key_prefix, on_event=dropping_on_invalidation(cache.drop_local)
    )
    cache.on_first_memory_use = admin_events.start
    cached_users = CachedUsers(cache, db)
    users = UserService(db, audit, RedisUserSessions(client, settings.redis_key_prefix), cached_users)
    leaderboards = LeaderboardService(db, audit, CachedLeaderboards(cache, db))
    return Services(
        settings=settings,
        db=db,
        redis=client,
        events=events,
        audit=audit,
        users=users,
        leaderboards=leaderboards,
        cache=cache,
        cached_users=cached_users,
        cached_prompts=CachedPrompts(cache, db),
        cached_leaderboards=CachedLeaderboards(cache, db),
        cache_admin=CacheService(cache, audit),
        rate_limits=RateLimitService(RateLimiter(client, settings.redis_key_prefix), cached_users, audit),
        admin_events=admin_events,
        provider_health=ProviderHealth(CircuitBreakers(client, settings.redis_key_prefix), audit, PROVIDERS),
        prometheus=_prometheus(settings),
        flags=build_flag_service(settings, audit, client),
    )
