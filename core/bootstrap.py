"""The composition root: builds every service from settings, once, in one place."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import redis

from core.audit import AuditLog, EventPublisher
from core.config import Settings, get_settings
from core.db import Database
from core.stack import resolve_urls

log = logging.getLogger(__name__)

ADMIN_EVENTS_STREAM = "admin-events"


def make_redis(url: str) -> redis.Redis:
    """Builds a Redis client with short timeouts so a dead Redis never stalls a page."""
    return redis.Redis.from_url(
        url,
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        health_check_interval=30,
        decode_responses=False,
    )


class RedisEvents:
    """Publishes admin events on the ``{prefix}admin-events`` stream; a Redis failure is logged, not raised."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.stream = f"{prefix}{ADMIN_EVENTS_STREAM}"

    def publish(self, kind: str, payload: dict[str, Any]) -> None:
        try:
            self.client.xadd(
                self.stream,
                {"kind": kind, "payload": json.dumps(payload, default=str)},
                maxlen=10_000,
                approximate=True,
            )
        except redis.RedisError as exc:
            log.warning("admin event %s not published: %s", kind, exc)


@dataclass
class Services:
    settings: Settings
    db: Database
    redis: redis.Redis
    events: EventPublisher
    audit: AuditLog

    def close(self) -> None:
        """Releases pooled connections."""
        self.db.dispose()
        self.redis.close()


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
    client = make_redis(urls.redis_url)
    events = RedisEvents(client, settings.redis_key_prefix)
    return Services(settings=settings, db=db, redis=client, events=events, audit=AuditLog(db, events))
