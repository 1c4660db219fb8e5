"""``krowoc-admin flags``: seed the registered flags into Unleash, list them, and report the embedded server."""

from __future__ import annotations

import typer

from core.bootstrap import build_services
from core.config import get_settings
from core.domain.exceptions import UnleashUnavailable
from core.endpoints import resolve_endpoints, resolve_unleash
from core.flags.models import FlagError
from devstack.flags import seed_flags
from devstack.unleash import embedded_server

flags_app = typer.Typer(help="Feature flags in Unleash: seed, list.", no_args_is_help=True)


def unleash_status_line() -> str:
    """Return the ``stack status`` line of the embedded Unleash."""
    settings = get_settings()
    status = embedded_server(settings, resolve_endpoints(settings).database_owner_url).status()
    state = f"running (pid {status.pid})" if status.running else "stopped"
    extra = "" if status.running else f"  {status.detail}"
    return f"{'unleash':<10} {state:<22} {status.url}{extra}"


@flags_app.command("seed")
def seed(
    force: bool = typer.Option(False, help="Add the registered flags missing from a non-empty Unleash too."),
) -> None:
    """Create the registered flags with realistic states in Unleash (once, unless --force)."""
    settings = get_settings()
    database_url = resolve_endpoints(settings).database_owner_url
    endpoint = resolve_unleash(settings)
    if endpoint is None:
        typer.echo("error: no Unleash is configured or running; run `krowoc-admin stack up` first.", err=True)
        raise typer.Exit(2)
    embedded = settings.unleash_url is None
    unleash_db = embedded_server(settings, database_url).database_url if embedded else None
    try:
        created = seed_flags(endpoint, database_url=unleash_db, only_if_empty=not force)
    except (FlagError, UnleashUnavailable) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"Created {created} flag(s) in {endpoint.api_url}." if created else "Unleash already has flags.")


@flags_app.command("list")
def list_flags() -> None:
    """Print every flag with its state in every environment."""
    services = build_services(get_settings())
    try:
        listing = services.flags.list_flags()
    except (FlagError, UnleashUnavailable) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    finally:
        services.close()
    envs = listing.catalog.environments
    if not listing.live:
        typer.echo(f"Unleash is down; last known state from {listing.catalog.fetched_at:%Y-%m-%d %H:%M:%S} UTC.")
    typer.echo(f"{'flag':<32} {'type':<12} " + " ".join(f"{e:<14}" for e in envs))
    for flag in listing.catalog.flags:
        cells = []
        for env in envs:
            state = flag.environments.get(env)
            if state is None:
                cells.append(f"{'-':<14}")
                continue
            rollout = f" {state.rollout}%" if state.enabled and state.rollout is not None else ""
            cells.append(f"{('on' if state.enabled else 'off') + rollout:<14}")
        typer.echo(f"{flag.name:<32} {flag.type:<12} " + " ".join(cells))
