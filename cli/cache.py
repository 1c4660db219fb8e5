"""``krowoc-admin cache ...``: cache figures, audited invalidation and rate-limit resets from a shell."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.environment import fail, staff
from core.bootstrap import build_services
from core.cache.keys import CacheTier, Namespace
from core.cache.service import NamespaceInvalidation, TierInvalidation
from core.domain.exceptions import InvalidInput, RedisUnavailable
from core.domain.models import Role
from core.domain.rbac import PermissionDenied
from core.ratelimit import RateLimitReset

cache_app = typer.Typer(help="Inspect and invalidate the cache; reset rate-limit buckets.", no_args_is_help=True)

NAMESPACES = ", ".join(ns.value for ns in Namespace)
TIER_NAMES = ", ".join(tier.value for tier in CacheTier)


@cache_app.command("status")
def status_command(minutes: Annotated[int, typer.Option(help="Hit-ratio window in minutes.")] = 5) -> None:
    """Print Redis's memory and our hit ratio per tier and namespace."""
    services = build_services()
    try:
        figures = services.cache_admin.redis_figures()
        typer.echo(
            f"{figures.server} {figures.version}: {figures.used_memory:,} B used of {figures.maxmemory:,} B "
            f"({figures.eviction_policy}), {figures.keys:,} keys, {figures.evicted_keys:,} evicted since start"
        )
        for row in services.cache_admin.counts(minutes):
            ratio = "-" if row.hit_ratio is None else f"{row.hit_ratio:.1%}"
            typer.echo(
                f"{row.tier:<12} {row.namespace:<16} hits {row.hits:>8,} misses {row.misses:>8,} "
                f"errors {row.errors:>6,} hit ratio {ratio}"
            )
    except RedisUnavailable as exc:
        fail(exc)
    finally:
        services.close()


@cache_app.command("invalidate")
def invalidate_command(
    reason: Annotated[str, typer.Option(help="Why, for the audit log (required).")],
    namespace: Annotated[str | None, typer.Option(help=f"One of {NAMESPACES}.")] = None,
    tier: Annotated[str | None, typer.Option(help=f"One of {TIER_NAMES}.")] = None,
    actor: Annotated[str, typer.Option(help="Who runs it, for the audit log.")] = "operator",
) -> None:
    """Invalidate a namespace or a whole tier (one version bump each), audited as an operator action."""
    if (namespace is None) == (tier is None):
        raise InvalidInput("Give exactly one of --namespace or --tier.")
    services = build_services()
    try:
        who = staff(actor, Role.OPERATOR, default="operator")
        if namespace is not None:
            result = services.cache_admin.invalidate_namespace(
                who, NamespaceInvalidation(namespace=namespace, reason=reason)
            )
        else:
            result = services.cache_admin.invalidate_tier(who, TierInvalidation(tier=tier or "", reason=reason))
    except (RedisUnavailable, PermissionDenied) as exc:
        fail(exc)
    finally:
        services.close()
    moved = ", ".join(f"{name} -> v{version}" for name, version in result.versions.items())
    typer.echo(f"Invalidated {result.target}: {moved}.")


@cache_app.command("reset-rate-limit")
def reset_rate_limit_command(
    user_id: Annotated[int, typer.Argument(help="The user whose bucket to refill.")],
    reason: Annotated[str, typer.Option(help="Why, for the audit log (required).")],
    actor: Annotated[str, typer.Option(help="Who runs it, for the audit log.")] = "support",
) -> None:
    """Refill a user's rate-limit bucket, audited as a support action."""
    services = build_services()
    try:
        state = services.rate_limits.reset(
            staff(actor, Role.SUPPORT, default="support"), RateLimitReset(user_id=user_id, reason=reason)
        )
    except (RedisUnavailable, PermissionDenied) as exc:
        fail(exc)
    finally:
        services.close()
    typer.echo(f"User {user_id}'s bucket is full again: {state.tokens:.0f} of {state.burst} tokens ({state.tier}).")
