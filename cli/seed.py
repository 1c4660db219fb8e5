"""``krowoc-admin seed``: generate a realistic platform and load it (development, demo and benchmark)."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.environment import connect, database_url, staff
from core.bootstrap import build_services
from core.domain.actions import AdminAction
from core.domain.exceptions import InvalidInput
from core.domain.models import Role
from core.domain.rbac import Permission


def seed(
    executions: Annotated[int, typer.Option(min=1, max=200_000_000, help="Executions to generate.")] = 1_000_000,
    days: Annotated[int, typer.Option(min=1, max=400, help="Days of history, ending now.")] = 30,
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1, help="Random seed; same seed, same data.")] = 42,
    reset: Annotated[bool, typer.Option(help="Replace the data of an already seeded database.")] = False,
    if_empty: Annotated[bool, typer.Option(help="Do nothing when the database is already seeded.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Generate a realistic platform and load it (refuses to seed twice unless --reset)."""
    # Imported here: pyarrow and the generator cost a second to load, which no other command needs.
    from devstack.seed import SeedOptions, is_seeded
    from devstack.seed import seed as run_seed

    if reset and if_empty:
        raise InvalidInput("--reset and --if-empty contradict each other; pass one of them")
    url = database_url()
    connect(url).close()
    if if_empty and is_seeded(url):
        typer.echo("The database is already seeded; nothing to do.")
        return
    options = SeedOptions(executions=executions, days=days, seed=seed)
    services = build_services()
    try:
        # Seeding writes a whole platform (and --reset replaces one): it is recorded as the machine account.
        with services.audit.action(
            staff("", Role.ADMIN, default=""),
            AdminAction.DATABASE_SEED,
            permission=Permission.SEED_DATABASE,
            target_type="database",
            target_id="platform",
            reason=f"krowoc-admin seed --executions {executions} --days {days} --seed {seed}"
            + (" --reset" if reset else ""),
            external=True,
            timeout_seconds=None,
        ) as action:
            report = run_seed(url, options, reset=reset, progress=progress)
            action.after = {"users": report.users, "prompts": report.prompts, "executions": report.executions}
    finally:
        services.close()
    timings = ", ".join(f"{k} {v:.1f}s" for k, v in report.seconds.items())
    typer.echo(
        f"Seeded {report.users:,} users, {report.prompts:,} prompts, {report.executions:,} executions "
        f"and {report.payloads:,} payloads from {report.start:%Y-%m-%d %H:%M} to {report.end:%Y-%m-%d %H:%M} UTC "
        f"({timings})."
    )
