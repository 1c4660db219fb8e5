"""``krowoc-admin migrate``, ``db roles`` and ``partitions``: the schema, who may touch it, the monthly partitions."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

import typer

from cli.environment import connect, database_url, redact, settings
from core.adapters import migrate as migrations
from core.adapters import roles
from core.adapters.db import make_engine
from core.domain.exceptions import InvalidInput

partitions_app = typer.Typer(help="Manage the monthly partitions of prompt_executions.", no_args_is_help=True)
db_app = typer.Typer(help="The database's roles.", no_args_is_help=True)


def migrate(revision: Annotated[str, typer.Option(help="Target revision.")] = "head") -> None:
    """Apply the database migrations up to a revision (on the embedded default, then grant the app role)."""
    url = database_url()
    connect(url).close()
    migrations.upgrade(url, revision)
    typer.echo(f"Database at revision {migrations.current_revision(url)}.")
    if settings().embedded and revision == "head":
        # The embedded dashboard connects as krowoc_app, never as the superuser that owns the schema.
        report = _apply_roles(url, roles.APP_ROLE, roles.READONLY_ROLE)
        typer.echo(f"Roles granted: {report.app} (the dashboard's), {report.readonly} (read-only).")


def _apply_roles(url: str, app: str, readonly: str) -> roles.RolesReport:
    config = settings()
    engine = make_engine(url, pool_size=1)
    try:
        with engine.begin() as conn:
            return roles.apply_roles(
                conn,
                app=app,
                readonly=readonly,
                app_password=config.app_role_password.get_secret_value() if config.app_role_password else None,
                readonly_password=(
                    config.readonly_role_password.get_secret_value() if config.readonly_role_password else None
                ),
            )
    finally:
        engine.dispose()


@db_app.command("roles")
def db_roles(
    app_role: Annotated[str, typer.Option(help="The role the dashboard and the API connect as.")] = roles.APP_ROLE,
    readonly_role: Annotated[str, typer.Option(help="The role for the read replica.")] = roles.READONLY_ROLE,
) -> None:
    """Create the app and read-only roles and grant them least privilege (run as the schema's owner; idempotent).

    Passwords come from KROWOC_APP_ROLE_PASSWORD and KROWOC_READONLY_ROLE_PASSWORD when set.
    """
    url = database_url()
    connect(url).close()
    report = _apply_roles(url, app_role, readonly_role)
    created = f"created {', '.join(report.created)}; " if report.created else ""
    typer.echo(
        f"Roles on {redact(url)}: {created}{report.app} may change the app's {report.tables} tables but only add "
        f"to and read audit_log; {report.readonly} may read; {report.owner} owns the schema."
    )


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
