"""``krowoc-admin rollups``: rebuild the minute and hour rollups, or fold new executions in."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.environment import database_url, staff
from core.bootstrap import build_services
from core.domain.models import Role
from core.executions import refresh
from core.executions.maintenance import RollupMaintenance, RollupRebuild

rollups_app = typer.Typer(help="Maintain the minute and hour rollups.", no_args_is_help=True)


@rollups_app.command("rebuild")
def rollups_rebuild(
    reason: Annotated[str, typer.Option(help="Why, for the audit log.")] = "rebuilt from the command line",
) -> None:
    """Recompute the minute and hour rollups from the raw executions (audited as the machine account)."""
    services = build_services()
    try:
        maintenance = RollupMaintenance(services.endpoints.database_url, services.audit)
        rows = maintenance.rebuild(staff("", Role.OPERATOR, default=""), RollupRebuild(reason=reason))
    finally:
        services.close()
    typer.echo(f"Rebuilt the rollups: {rows:,} minute rows.")


@rollups_app.command("refresh")
def refresh_command(
    follow_: Annotated[bool, typer.Option("--follow", help="Keep refreshing until interrupted.")] = False,
    every: Annotated[float, typer.Option(min=0.5, max=3600, help="Seconds between refreshes with --follow.")] = 5.0,
) -> None:
    """Fold the executions written since the last refresh into the minute and hour rollups."""
    url = database_url()
    if not follow_:
        typer.echo(refresh.refresh(url).describe())
        return
    try:
        refresh.follow(url, every=every, report=lambda r: typer.echo(r.describe()))
    except KeyboardInterrupt:
        typer.echo("Stopped.")
