"""Settings and actors for tests: pointed at the test servers, with a key prefix of the run's own."""

from __future__ import annotations

from pathlib import Path

from core.config import Settings
from core.domain.models import Actor, AuditSource, Role

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def settings_for(database_url: str, redis_url: str, redis_prefix: str, **extra: object) -> Settings:
    """Build settings that point at the test servers."""
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        redis_key_prefix=redis_prefix,
        dev_login=True,
        **extra,  # type: ignore[arg-type]
    )


def actor(role: Role, name: str | None = None) -> Actor:
    """Build a staff actor of a role, acting from the command line."""
    return Actor(id=name or f"{role.value}@krowoc.test", role=role, source=AuditSource.CLI)
