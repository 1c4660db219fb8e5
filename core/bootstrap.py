"""The composition root: builds every service from settings and resolved endpoints, once, in one place.

``build_services(settings, endpoints)`` builds the real adapters for the endpoints it is given
(``core.endpoints.resolve_endpoints`` by default); a caller may pass its own database, Redis
client or Unleash adapter instead (tests do, with real test servers or fakes). Nothing here
starts a server: the dev stack does that, and only for development and the demo.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from core.adapters.db import Database
from core.adapters.events import AdminEventConsumer, RedisEvents, dropping_on_invalidation
from core.adapters.prometheus import PrometheusClient
from core.adapters.redis import RedisClient, make_redis
from core.audit import ActionLimit, ActionThrottle, AuditLog, AuditUpkeep, EventPublisher
from core.cache import Cache, CachedLeaderboards, CachedPrompts, CachedUsers
from core.cache.service import CacheService
from core.config import Settings, get_settings
from core.domain.actions import AdminAction
from core.domain.catalog import PROVIDERS
from core.endpoints import Endpoints, resolve_endpoints
from core.executions.export import ExecutionExports
from core.flags.evaluation import FlagEvaluator
from core.flags.service import FlagService, FlagSnapshots
from core.flags.unleash_admin import UnleashAdmin, token_environment
from core.health import HealthService, PulseReader
from core.leaderboards import LeaderboardService
from core.providers.breaker import CircuitBreakers
from core.providers.service import ProviderHealth
from core.ratelimit import RateLimiter, RateLimitService
from core.users import RedisUserSessions, UserService

log = logging.getLogger(__name__)


@dataclass
class Services:
    """Every service of one configuration, sharing one pool of connections."""

    settings: Settings
    endpoints: Endpoints
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
    health: HealthService
    pulse: PulseReader
    audit_upkeep: AuditUpkeep
    exports: ExecutionExports

    def close(self) -> None:
        """Release pooled connections and stop background readers."""
        self.audit_upkeep.stop()
        self.admin_events.stop()
        self.flags.close()
        self.cache.counters.flush()
        self.db.dispose()
        self.redis.close()


def build_flag_service(
    settings: Settings, endpoints: Endpoints, audit: AuditLog, client: RedisClient | None
) -> FlagService:
    """Build the flag service for the resolved Unleash, or one without Unleash (it then says how to configure it)."""
    snapshots = FlagSnapshots(client, settings.redis_key_prefix)
    endpoint = endpoints.unleash
    if endpoint is None:
        return FlagService(None, audit, snapshots)
    # The backend tokens the adapter may read the client API with, by environment (Unleash 7+ refuses
    # the admin token there): the embedded stack's, or the configured client token's environment.
    client_tokens = dict(endpoint.client_tokens)
    environment = token_environment(endpoint.client_token) if endpoint.client_token else None
    if environment:
        client_tokens.setdefault(environment, endpoint.client_token)
    admin = UnleashAdmin(
        endpoint.api_url, endpoint.admin_token, timeout=settings.unleash_timeout_seconds, client_tokens=client_tokens
    )
    evaluator = None
    if endpoint.client_token:
        evaluator = FlagEvaluator(
            endpoint.api_url,
            endpoint.client_token,
            settings.unleash_backup_dir or settings.state_dir / "unleash-client",
            refresh_seconds=settings.unleash_refresh_seconds,
        )
    return FlagService(admin, audit, snapshots, evaluator)


def build_throttle(settings: Settings, client: RedisClient) -> ActionThrottle:
    """Build the per-person throttle of admin actions from the settings' limits."""
    limits = {AdminAction(name): ActionLimit.parse(text) for name, text in settings.action_limits.items()}
    return ActionThrottle(
        client, settings.redis_key_prefix, limits=limits, default=ActionLimit.parse(settings.action_limit_default)
    )


def build_services(
    settings: Settings | None = None,
    endpoints: Endpoints | None = None,
    *,
    db: Database | None = None,
    redis: RedisClient | None = None,
    app: bool = False,
) -> Services:
    """Build the services for resolved endpoints (the configured ones by default), with the given adapters.

    ``app``: these serve people (the dashboard, the API), so the database connection may not be a
    superuser's or the schema owner's unless ``KROWOC_ALLOW_OWNER`` says so.
    """
    settings = settings or get_settings()
    given = endpoints
    endpoints = endpoints or resolve_endpoints(settings)
    db = db or Database.from_urls(
        endpoints.database_url,
        endpoints.database_replica_url,
        pool_size=settings.pool_size,
        pool_timeout_seconds=settings.pool_timeout_seconds,
        statement_timeout_ms=settings.statement_timeout_ms,
        replica_retry_seconds=settings.replica_retry_seconds,
        grace_seconds=settings.query_grace_seconds,
        write_timeout_seconds=settings.write_timeout_seconds,
        least_privilege=app and not settings.allow_owner,
        connect_timeout_seconds=settings.connect_timeout_seconds,
    )
    client = redis or make_redis(endpoints.redis_url, cluster=settings.redis_cluster)
    prefix = settings.redis_key_prefix
    events = RedisEvents(client, prefix)
    audit = AuditLog(db, events, throttle=build_throttle(settings, client))
    cache = Cache(client, prefix)
    # Read the admin events (drop the memory tier on an invalidation) once this process uses that tier.
    admin_events = AdminEventConsumer(client, prefix, on_event=dropping_on_invalidation(cache.drop_local))
    cache.on_first_memory_use = admin_events.start
    cached_users = CachedUsers(cache, db)
    cache_admin = CacheService(cache, audit)
    # Health looks again at each check: the embedded Unleash or Prometheus may start after the services.
    health = HealthService(settings, db, client, endpoints=lambda: given or resolve_endpoints(settings), audit=audit)
    return Services(
        settings=settings,
        endpoints=endpoints,
        db=db,
        redis=client,
        events=events,
        audit=audit,
        users=UserService(db, audit, RedisUserSessions(client, prefix), cached_users),
        leaderboards=LeaderboardService(db, audit, CachedLeaderboards(cache, db)),
        cache=cache,
        cached_users=cached_users,
        cached_prompts=CachedPrompts(cache, db),
        cached_leaderboards=CachedLeaderboards(cache, db),
        cache_admin=cache_admin,
        rate_limits=RateLimitService(RateLimiter(client, prefix), cached_users, audit),
        admin_events=admin_events,
        provider_health=ProviderHealth(CircuitBreakers(client, prefix), audit, PROVIDERS),
        prometheus=PrometheusClient(endpoints.prometheus_url) if endpoints.prometheus_url else None,
        flags=build_flag_service(settings, endpoints, audit, client),
        health=health,
        pulse=PulseReader(cache_admin, audit, health),
        audit_upkeep=AuditUpkeep(audit, events),
        exports=ExecutionExports(db, audit, client, prefix, max_rows=settings.export_max_rows),
    )
