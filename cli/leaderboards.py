"""``krowoc-admin leaderboards refresh``: recompute the leaderboard snapshots, audited."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from cli.environment import staff
from core.bootstrap import build_services
from core.domain.exceptions import DependencyUnavailable
from core.domain.models import Role
from core.leaderboards import LeaderboardRecompute

leaderboards_app = typer.Typer(help="Recompute the leaderboard snapshots.", no_args_is_help=True)


@leaderboards_app.command("refresh")
def refresh_command(
    reason: Annotated[str, typer.Option(help="Why, for the audit log.")] = "scheduled refresh",
    actor: Annotated[str, typer.Option(help="Who runs it, for the audit log.")] = "scheduler",
    every: Annotated[
        float, typer.Option(min=0, max=86_400, help="Seconds between refreshes, until interrupted; 0: refresh once.")
    ] = 0.0,
) -> None:
    """Recompute the top users and prompts of every window (run it on a schedule, e.g. every 10 minutes)."""
    while True:
        try:
            _refresh_once(reason, actor)
        except DependencyUnavailable as exc:
            if not every:
                raise
            typer.echo(f"error: {exc} (next try in {every:g} s)", err=True)
        if not every:
            return
        time.sleep(every)


def _refresh_once(reason: str, actor: str) -> None:
    services = build_services()
    try:
        who = staff(actor, Role.OPERATOR, default="scheduler")
        report = services.leaderboards.refresh(who, LeaderboardRecompute(reason=reason))
    finally:
        services.close()
    shown = ", ".join(f"{board} {count}" for board, count in report.rows.items())
    typer.echo(f"Leaderboards computed at {report.computed_at:%Y-%m-%d %H:%M:%S} UTC: {shown} rows.")
