"""The ``krowoc-admin`` command line: each command group lives in its own module; this assembles them."""

from __future__ import annotations

import sys

import typer
from pydantic import ValidationError

from cli import db, seed, verify
from cli.audit import audit_app
from cli.cache import cache_app
from cli.flags import flags_app
from cli.leaderboards import leaderboards_app
from cli.rollups import rollups_app
from cli.simulate import simulate_app
from cli.stack import stack_app
from core.domain.exceptions import DependencyUnavailable, InvalidInput
from devstack.stack import StackError

app = typer.Typer(
    name="krowoc-admin",
    help="Krowoc Admin: run the embedded stack, migrate, seed and maintain the database.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
)
app.add_typer(stack_app, name="stack")
app.command("migrate")(db.migrate)
app.add_typer(db.db_app, name="db")
app.add_typer(db.partitions_app, name="partitions")
app.command("seed")(seed.seed)
app.add_typer(rollups_app, name="rollups")
app.add_typer(flags_app, name="flags")
app.add_typer(leaderboards_app, name="leaderboards")
app.add_typer(cache_app, name="cache")
app.add_typer(simulate_app, name="simulate")
app.add_typer(audit_app, name="audit")
app.command("verify")(verify.verify)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; user errors print one line and exit with status 2."""
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
    except (InvalidInput, StackError, DependencyUnavailable) as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
