"""``krowoc-admin stack``: start, stop and inspect the embedded servers (development and demo only)."""

from __future__ import annotations

import typer

from cli.environment import settings
from cli.flags import unleash_status_line
from devstack.stack import EmbeddedStack

stack_app = typer.Typer(help="Start, stop and inspect the embedded PostgreSQL and Valkey.", no_args_is_help=True)


@stack_app.command("up")
def stack_up() -> None:
    """Start the embedded PostgreSQL and Valkey (a no-op when they already run)."""
    configured = settings()
    if not configured.embedded or configured.redis_url:
        typer.echo("Real servers are configured through KROWOC_* URLs; nothing embedded is started.")
        return
    stack = EmbeddedStack(configured)
    urls = stack.up(with_unleash=True, with_prometheus=True)
    typer.echo(f"PostgreSQL  {urls.database_url}")
    typer.echo(f"Valkey      {urls.redis_url}")
    typer.echo(f"Unleash     {stack.unleash_note}")
    typer.echo(f"Prometheus  {stack.prometheus_note}")


@stack_app.command("down")
def stack_down() -> None:
    """Stop the embedded servers this stack started (and nothing else)."""
    stopped = EmbeddedStack(settings()).down()
    typer.echo(f"Stopped: {', '.join(stopped)}" if stopped else "Nothing of the embedded stack was running.")


@stack_app.command("status")
def stack_status() -> None:
    """Show whether each embedded server runs, its URL and pid."""
    for part in EmbeddedStack(settings()).status():
        state = f"running (pid {part.pid})" if part.running else "stopped"
        typer.echo(f"{part.name:<10} {state:<22} {part.url}")
    typer.echo(unleash_status_line())
