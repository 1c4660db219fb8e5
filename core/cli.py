"""The ``krowoc-admin`` command line: the embedded stack, migrations, partitions, seed data, rollups."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from typing import Annotated

import psycopg
import typer
from pydantic import ValidationError

from core import migrate as migrations
from core import rollups as rollup_builder
from core import rollups_refresh, simulator
from core.cache.cli import cache_app
from core.config import Settings, get_settings
from core.db import DatabaseUnavailable, libpq_url
from core.flags import cli as flags_cli
from core.leaderboards import cli as leaderboards_cli
from core.models import InvalidInput
from core.stack import EmbeddedStack, StackError, resolve_urls

app = typer.Typer(
    name="krowoc-admin",
    help="Krowoc Admin: run the embedded stack, migrate, seed and maintain the database.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
)
stack_app = typer.Typer(help="Start, stop and inspect the embedded PostgreSQL and Valkey.", no_args_is_help=True)
partitions_app = typer.Typer(help="Manage the monthly partitions of prompt_executions.", no_args_is_help=True)
rollups_app = typer.Typer(help="Maintain the minute and hour rollups.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
app.add_typer(partitions_app, name="partitions")
app.add_typer(rollups_app, name="rollups")
app.add_typer(flags_cli.flags_app, name="flags")
app.add_typer(leaderboards_cli, name="leaderboards")
app.add_typer(cache_app, name="cache")
rollups_app.command("refresh")(rollups_refresh.refresh_command)
app.add_typer(simulator.simulate_app, name="simulate")


def _settings() -> Settings:
    return get_settings()


def _database_url() -> str:
    return resolve_urls(_settings()).database_url


def _connect(url: str) -> psycopg.Connection:
    try:
        return psycopg.connect(libpq_url(url), connect_timeout=5)
    except psycopg.OperationalError as exc:
        hint = "run `krowoc-admin stack up`" if _settings().embedded else "check KROWOC_DATABASE_URL"
        raise DatabaseUnavailable(f"cannot reach PostgreSQL at {_redact(url)} ({hint})") from exc


def _redact(url: str) -> str:
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}@{host}"


@stack_app.command("up")
def stack_up() -> None:
    """Start the embedded PostgreSQL and Valkey (a no-op when they already run)."""
    settings = _settings()
    if not settings.embedded or settings.redis_url:
        typer.echo("Real servers are configured through KROWOC_* URLs; nothing embedded is started.")
        return
    stack = EmbeddedStack(settings)
    urls = stack.up(with_unleash=True, with_prometheus=True)
    typer.echo(f"PostgreSQL  {urls.database_url}")
    typer.echo(f"Valkey      {urls.redis_url}")
    typer.echo(f"Unleash     {stack.unleash_note}")
    typer.echo(f"Prometheus  {stack.prometheus_note}")


@stack_app.command("down")
def stack_down() -> None:
    """Stop the embedded servers this stack started (and nothing else)."""
    stopped = EmbeddedStack(_settings()).down()
    typer.echo(f"Stopped: {', '.join(stopped)}" if stopped else "Nothing of the embedded stack was running.")


@stack_app.command("status")
def stack_status() -> None:
    """Show whether each embedded server runs, its URL and pid."""
    for part in EmbeddedStack(_settings()).status():
        state = f"running (pid {part.pid})" if part.running else "stopped"
        typer.echo(f"{part.name:<10} {state:<22} {part.url}")
    typer.echo(flags_cli.unleash_status_line())


@app.command("migrate")
def migrate(revision: Annotated[str, typer.Option(help="Target revision.")] = "head") -> None:
    """Apply the database migrations up to a revision."""
    url = _database_url()
    _connect(url).close()
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
    with _connect(_database_url()) as conn:
        row = conn.execute("SELECT krowoc_ensure_execution_partitions(%s, %s)", (first, months)).fetchone()
    typer.echo(f"Created {row[0] if row else 0} partition(s); months covered from {first:%Y-%m}, {months} in all.")


def _month(text: str) -> date:
    try:
        return datetime.strptime(text, "%Y-%m").date()
    except ValueError as exc:
        raise InvalidInput(f"--since must look like 2026-01, not {text!r}") from exc


def _months_between(first: date, today: date) -> int:
    return max(0, (today.year - first.year) * 12 + today.month - first.month)


@app.command("seed")
def seed(
    executions: Annotated[int, typer.Option(min=1, max=200_000_000, help="Executions to generate.")] = 1_000_000,
    days: Annotated[int, typer.Option(min=1, max=400, help="Days of history, ending now.")] = 30,
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1, help="Random seed; same seed, same data.")] = 42,
    reset: Annotated[bool, typer.Option(help="Replace the data of an already seeded database.")] = False,
    if_empty: Annotated[bool, typer.Option(help="Do nothing when the database is already seeded.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Generate a realistic platform and load it (refuses to seed twice unless --reset)."""
    from core.seed import SeedOptions, is_seeded
    from core.seed import seed as run_seed

    if reset and if_empty:
        raise InvalidInput("--reset and --if-empty contradict each other; pass one of them")
    url = _database_url()
    _connect(url).close()
    if if_empty and is_seeded(url):
        typer.echo("The database is already seeded; nothing to do.")
        return
    options = SeedOptions(executions=executions, days=days, seed=seed)
    report = run_seed(url, options, reset=reset, progress=progress)
    timings = ", ".join(f"{k} {v:.1f}s" for k, v in report.seconds.items())
    typer.echo(
        f"Seeded {report.users:,} users, {report.prompts:,} prompts, {report.executions:,} executions "
        f"and {report.payloads:,} payloads from {report.start:%Y-%m-%d %H:%M} to {report.end:%Y-%m-%d %H:%M} UTC "
        f"({timings})."
    )


@rollups_app.command("rebuild")
def rollups_rebuild() -> None:
    """Recompute the minute and hour rollups from the raw executions."""
    rows = rollup_builder.rebuild(_database_url())
    typer.echo(f"Rebuilt the rollups: {rows:,} minute rows.")


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; user errors print one line and exit with status 2."""
    try:
        # Outside standalone mode click returns a ``typer.Exit``'s code instead of raising it.
        code = app(args=argv, standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        typer.echo("error: aborted", err=True)
        return 130
    except typer.TyperException as exc:
        context = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and context is not None:
            typer.echo(context.get_help())
            return 2
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        typer.echo(f"error: {message}", err=True)
        return 2
    except ValidationError as exc:
        first = exc.errors()[0]
        typer.echo(f"error: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}", err=True)
        return 2
    except (InvalidInput, StackError, DatabaseUnavailable) as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
