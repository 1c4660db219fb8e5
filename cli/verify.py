"""``krowoc-admin verify``: after a migration, a restore or an incident, check the data can be trusted."""

from __future__ import annotations

import random
from typing import Annotated

import typer

from cli.environment import settings
from core.bootstrap import build_services
from core.health.integrity import IntegrityCheck


def verify(
    months_ahead: Annotated[
        int, typer.Option(min=0, max=120, help="Months after this one that must have a partition.")
    ] = 1,
    seed: Annotated[int | None, typer.Option(help="Seed of the random sample of hours (to repeat a run).")] = None,
) -> None:
    """Check the rollups against the raw executions, the partitions, and the audit chain; exit 1 on any problem."""
    services = build_services()
    try:
        check = IntegrityCheck(
            services.db,
            services.audit,
            retention_days=settings().execution_retention_days,
            months_ahead=months_ahead,
        )
        problems = check.run(rng=random.Random(seed))
    finally:
        services.close()
    for problem in problems:
        typer.echo(f"{problem.check}: {problem.line}", err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo("Rollups, partitions and the audit chain check out.")
