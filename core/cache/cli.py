"""``krowoc-admin cache ...``: cache figures, audited invalidation and rate-limit resets from a shell."""

from __future__ import annotations

from typing import Annotated, NoReturn

import typer

from core.cache.keys import CacheTier, Namespace
from core.cache.service import CacheUnavailable
from core.models import Actor, AuditSource, InvalidInput, Role
from core.rbac import PermissionDenied

cache_app = typer.Typer(help="Inspect and invalidate the cache; reset rate-limit buckets.", no_args_is_help=True)

NAMESPACES = ", ".join(ns.value for ns in Namespace)
TIERS = ", ".join(tier.value for tier in CacheTier)


def _cli_actor(name: str, role: Role) -> Actor:
    return Actor(id=f"cli:{name.strip() or 'operator'}", role=role, source=AuditSource.CLI)


def _fail(exc: Exception) -> NoReturn:
    """Print a refused or failed action in one line and exit with status 1 (bad input exits with 2)."""
    typer.echo(f"error: {exc}", err=True)
    raise SystemExit(1) from exc


@cache_app.command("status")
def status_command(minutes: Annotated[int, typer.Option(help="Hit-ratio window in minutes.")] = 5) -> None:
    """Print Redis's memory and our hit ratio per tier and namespace."""
    from core.bootstrap import build_services

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
    except CacheUnavailable as exc:
        _fail(exc)
    finally:
        services.close()


@cache_app.command("invalidate")
def invalidate_command(
    reason: Annotated[str, typer.Option(help="Why, for the audit log (required).")],
    namespace: Annotated[str | None, typer.Option(help=f"One of {NAMESPACES}.")] = None,
    tier: Annotated[str | None, typer.Option(help=f"One of {TIERS}.")] = None,
    actor: Annotated[str, typer.Option(help="Who runs it, for the audit log.")] = "operator",
) -> None:
    """Invalidate a namespace or a whole tier (one version bump each), audited as an operator action."""
    from core.bootstrap import build_services

    if (namespace is None) == (tier is None):
        raise InvalidInput("Give exactly one of --namespace or --tier.")
    services = build_services()
    try:
        who = _cli_actor(actor, Role.OPERATOR)
        if namespace is not None:
            result = services.cache_admin.invalidate_namespace(who, namespace=namespace, reason=reason)
        else:
            result = services.cache_admin.invalidate_tier(who, tier=tier or "", reason=reason)
    except (CacheUnavailable, PermissionDenied) as exc:
        _fail(exc)
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
    from core.bootstrap import build_services

    services = build_services()
    try:
        state = services.rate_limits.reset(_cli_actor(actor, Role.SUPPORT), user_id, reason=reason)
    except (CacheUnavailable, PermissionDenied) as exc:
        _fail(exc)
    finally:
        services.close()
    typer.echo(f"User {user_id}'s bucket is full again: {state.tokens:.0f} of {state.burst} tokens ({state.tier}).")
