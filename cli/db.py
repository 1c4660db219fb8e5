"""``krowoc-admin migrate`` and ``krowoc-admin partitions``: the schema and the monthly partitions."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

import typer

from cli.environment import connect, database_url
from core.adapters import migrate as migrations
from core.domain.exceptions import InvalidInput

partitions_app = typer.Typer(help="Manage the monthly partitions of prompt_executions.", no_args_is_help=True)


def migrate(revision: Annotated[str, typer.Option(help="Target revision.")] = "head") -> None:
    """Apply the database migrations up to a revision."""
    url = database_url()
    connect(url).close()
    migrations.upgrade(url, revision)
    typer.echo(f"Database at revision {migrations.current_revision(url)}.")


@partitions_app.command("ensure")
def partitions_ensure(
    months_ahead: Annotated[int, typer.Option(min=0, max=120, help="Months after the current one.")] = 3,
    since: Annotated[str | None, typer.Option(help="First month (YYYY-MM); default: this month.")] = None,
) -> None:
    """Create the monthly partitions of prompt_executions ahead of time."""
    first = _month(since) if since else datetime.now(UTC).date().replace(day=1)
    months = months_ahead + 1 + _months_between(first, datetime.now(UTC).date())
    with connect(database_url()) as conn:
        row = conn.execute("SELECT krowoc_ensure_execution_partitions(%s, %s)", (first, months)).fetchone()
    typer.echo(f"Created {row[0] if row else 0} partition(s); months covered from {first:%Y-%m}, {months} in all.")


def _month(text: str) -> date:
    try:
        return datetime.strptime(text, "%Y-%m").date()
    except ValueError as exc:
        raise InvalidInput(f"--since must look like 2026-01, not {text!r}") from exc


def _months_between(first: date, today: date) -> int:
    return max(0, (today.year - first.year) * 12 + today.month - first.month)
