"""``krowoc-admin audit``: check the audit log's hash chain, close stale intents, show the chain's head."""

from __future__ import annotations

from typing import Annotated

import typer

from core.bootstrap import build_services

audit_app = typer.Typer(help="Check and keep the audit log.", no_args_is_help=True)


@audit_app.command("verify")
def verify_command(
    since: Annotated[int, typer.Option(min=0, help="First row id to check (its link to the row before too).")] = 0,
) -> None:
    """Recompute the hash chain and name the first row that does not follow from the one before it."""
    services = build_services()
    try:
        verdict = services.audit.verify(since_id=since)
    finally:
        services.close()
    if verdict.first_break is not None:
        typer.echo(
            f"error: the audit log was changed at row {verdict.first_break.id}: {verdict.first_break.why}.", err=True
        )
        raise typer.Exit(1)
    head = f"head {verdict.head_id} {verdict.head_hash}" if verdict.head_id is not None else "the log is empty"
    typer.echo(f"The audit chain holds: {verdict.rows:,} row(s) checked; {head}.")


@audit_app.command("reap")
def reap_command() -> None:
    """Close the intents left without an outcome as unknown, and publish the chain's head."""
    services = build_services()
    try:
        report = services.audit_upkeep.run_once()
    finally:
        services.close()
    typer.echo(
        f"Closed {report.reaped} intent(s) as unknown; {report.unknown} unknown outcome(s) in 24 h, "
        f"{report.waiting} intent(s) waiting; head {report.head_id} {report.head_hash}."
    )


@audit_app.command("head")
def head_command() -> None:
    """Print the id and hash of the chain's newest row (keep it: a later rewrite will not match it)."""
    services = build_services()
    try:
        head = services.audit.head()
    finally:
        services.close()
    typer.echo("The audit log is empty." if head is None else f"{head[0]} {head[1]}")
