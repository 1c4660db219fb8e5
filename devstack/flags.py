"""Seed an empty Unleash with the registered flags in realistic states, through its Admin API.

Creation dates cannot be set through the API; when the Unleash database URL is given (the embedded
and test servers), old flags are back-dated there so that they become potentially stale the way
Unleash judges it (created longer ago than their type's expected lifetime).
"""

from __future__ import annotations

import psycopg

from core.flags.models import UnleashEndpoint
from core.flags.registry import REGISTRY, FlagDefinition
from core.flags.unleash_admin import UnleashAdmin

PROJECT = "default"


def _strategy_for(definition: FlagDefinition, rollout: int) -> tuple[str, dict[str, str]]:
    if definition.type in ("kill-switch", "permission") and rollout == 100:
        return "default", {}
    return "flexibleRollout", {"rollout": str(rollout), "stickiness": "default", "groupId": definition.name}


def seed_flags(
    endpoint: UnleashEndpoint,
    *,
    database_url: str | None = None,
    only_if_empty: bool = True,
    definitions: list[FlagDefinition] | None = None,
) -> int:
    """Create the registered flags with their per-environment states; returns how many it created."""
    admin = UnleashAdmin(endpoint.api_url, endpoint.admin_token, timeout=10)
    try:
        existing = set(admin.flag_names(PROJECT))
        if only_if_empty and existing:
            return 0
        chosen = [d for d in (definitions or list(REGISTRY.values())) if d.name not in existing]
        for definition in chosen:
            admin.create_flag(PROJECT, definition.name, definition.type, definition.description)
            for environment, rollout in definition.seed.items():
                strategy, parameters = _strategy_for(definition, 100 if rollout is None else rollout)
                admin.add_strategy(PROJECT, definition.name, environment, strategy, parameters)
                if rollout is not None:
                    admin.set_enabled(PROJECT, definition.name, environment, True)
        stale = [d.name for d in chosen if d.stale]
        if stale:
            admin.mark_stale(PROJECT, stale)
    finally:
        admin.close()
    old = {d.name: d.age_days for d in chosen if d.age_days}
    if database_url and old:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
            for name, days in old.items():
                conn.execute(
                    "UPDATE features SET created_at = now() - make_interval(days => %s) WHERE name = %s", (days, name)
                )
    return len(chosen)
