"""Where each server is: the configured URL, else what the embedded stack wrote in its state file.

Nothing here starts a server or looks at processes: ``devstack`` (``krowoc-admin stack up``)
writes ``state_dir/stack.json`` with the URLs of what it started, and the Unleash tokens it made
under ``state_dir/unleash/tokens.json``; this module only reads them. So the platform's API can
import ``core`` without the dev stack, and points at real servers through ``KROWOC_*`` settings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.adapters.roles import APP_ROLE
from core.config import Settings
from core.flags.models import UnleashEndpoint

STATE_FILE = "stack.json"
UNLEASH_TOKENS = Path("unleash") / "tokens.json"
EMBEDDED_PG_USER = "postgres"
"""The embedded PostgreSQL's superuser: it runs the migrations and owns the schema."""
EMBEDDED_DATABASE = "krowoc"
UNLEASH_DATABASE = "unleash"


@dataclass(frozen=True)
class Endpoints:
    """The resolved address of every server the services talk to."""

    database_url: str
    redis_url: str
    database_owner_url: str = ""
    database_replica_url: str | None = None
    unleash: UnleashEndpoint | None = None
    prometheus_url: str | None = None


def state_path(settings: Settings) -> Path:
    """Return the file where the embedded stack records the URLs of the servers it started."""
    return settings.state_dir / STATE_FILE


def embedded_database_url(
    settings: Settings, database: str = EMBEDDED_DATABASE, *, user: str = EMBEDDED_PG_USER
) -> str:
    """Return the URL of a database on the embedded PostgreSQL (running or not), as its superuser by default."""
    return f"postgresql://{user}@127.0.0.1:{settings.embedded_postgres_port}/{database}"


def embedded_redis_url(settings: Settings) -> str:
    """Return the URL of the embedded Valkey (running or not)."""
    return f"redis://127.0.0.1:{settings.embedded_redis_port}/0"


def embedded_unleash_base_url(settings: Settings) -> str:
    """Return the base URL the embedded Unleash listens on."""
    return f"http://127.0.0.1:{settings.embedded_unleash_port}"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def read_state(settings: Settings) -> dict[str, Any]:
    """Return what the embedded stack wrote in its state file (empty when it is not running)."""
    return _read_json(state_path(settings)) or {}


def resolve_unleash(settings: Settings) -> UnleashEndpoint | None:
    """Return the configured Unleash, else the embedded one when it was set up once, else None."""
    if settings.unleash_url and settings.unleash_admin_token:
        api_url = settings.unleash_url.rstrip("/")
        if not api_url.endswith("/api"):
            api_url += "/api"
        client = settings.unleash_client_token.get_secret_value() if settings.unleash_client_token else ""
        return UnleashEndpoint(
            api_url=api_url,
            admin_token=settings.unleash_admin_token.get_secret_value(),
            client_token=client,
            client_tokens={},
        )
    if settings.unleash_url or not settings.embedded:
        return None
    tokens = _read_json(settings.state_dir / UNLEASH_TOKENS)
    if tokens is None:
        return None
    try:
        client_tokens = {str(env): str(token) for env, token in dict(tokens["client"]).items()}
        return UnleashEndpoint(
            api_url=f"{embedded_unleash_base_url(settings)}/api",
            admin_token=str(tokens["admin"]),
            client_token=client_tokens["production"],
            client_tokens=client_tokens,
        )
    except (KeyError, TypeError, ValueError):
        return None


def resolve_prometheus_url(settings: Settings) -> str | None:
    """Return the configured Prometheus URL, else the embedded one when the stack started it, else None."""
    if settings.prometheus_url:
        return settings.prometheus_url
    if not settings.embedded:
        return None
    url = read_state(settings).get("prometheus_url")
    return str(url) if url else None


def resolve_endpoints(settings: Settings) -> Endpoints:
    """Return every server's address: the configured ones, else the embedded stack's.

    The owner's database URL (migrations, seeding, roles) is ``KROWOC_DATABASE_OWNER_URL``, else
    the app's; on the embedded default the app connects as ``krowoc_app`` and the owner is the superuser.
    """
    return Endpoints(
        database_url=settings.database_url or embedded_database_url(settings, user=APP_ROLE),
        redis_url=settings.redis_url or embedded_redis_url(settings),
        database_owner_url=settings.database_owner_url or settings.database_url or embedded_database_url(settings),
        database_replica_url=settings.database_replica_url,
        unleash=resolve_unleash(settings),
        prometheus_url=resolve_prometheus_url(settings),
    )
