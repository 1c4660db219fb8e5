"""``krowoc-admin stack``: start, stop and inspect the embedded servers and the demo's live traffic."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from cli.environment import connect, database_url, settings
from cli.flags import unleash_status_line
from core.bootstrap import build_services
from core.domain.exceptions import InvalidInput
from core.executions import refresh
from devstack.processes import StackProcess
from devstack.prometheus import PrometheusServer
from devstack.seed.profiles import traffic_shape
from devstack.simulator.engine import MAX_RATE, TrafficSimulator
from devstack.stack import EmbeddedStack, StackError

stack_app = typer.Typer(
    help="Start, stop and inspect the embedded servers and the demo's live traffic.", no_args_is_help=True
)

LEADERBOARDS_EVERY = 300.0
ROLLUPS_EVERY = 5.0
METRICS_PORT = 9464


@stack_app.command("up")
def stack_up() -> None:
    """Start the embedded PostgreSQL, Valkey, Unleash, OpenID provider and Prometheus (a no-op when they run)."""
    configured = settings()
    if not configured.embedded or configured.redis_url:
        typer.echo("Real servers are configured through KROWOC_* URLs; nothing embedded is started.")
        return
    stack = EmbeddedStack(configured)
    urls = stack.up(with_unleash=True, with_prometheus=True, with_oidc=True)
    typer.echo(f"PostgreSQL  {urls.database_url}")
    typer.echo(f"Valkey      {urls.redis_url}")
    typer.echo(f"Unleash     {stack.unleash_note}")
    typer.echo(f"OpenID      {stack.oidc_note}")
    typer.echo(f"Prometheus  {stack.prometheus_note}")


@stack_app.command("down")
def stack_down() -> None:
    """Stop the embedded servers and background processes this stack started (and nothing else)."""
    stopped = EmbeddedStack(settings()).down()
    typer.echo(f"Stopped: {', '.join(stopped)}" if stopped else "Nothing of the embedded stack was running.")


@stack_app.command("status")
def stack_status() -> None:
    """Show whether each embedded server and background process runs, its URL or log, and its pid."""
    stack = EmbeddedStack(settings())
    for part in stack.status():
        state = f"running (pid {part.pid})" if part.running else "stopped"
        typer.echo(f"{part.name:<10} {state:<22} {part.url}")
    typer.echo(unleash_status_line())
    prometheus = PrometheusServer(settings()).status()
    state = f"running (pid {prometheus.pid})" if prometheus.running else "stopped"
    typer.echo(f"{'prometheus':<10} {state:<22} {prometheus.url}")
    for process in stack.processes():
        state = f"running (pid {process.pid})" if process.running else "stopped"
        typer.echo(f"{process.name:<21} {state:<22} log {process.log}")


def _cli(*args: str) -> list[str]:
    """Return the command line of a ``krowoc-admin`` command run by this interpreter."""
    return [sys.executable, "-m", "cli.main", *args]


def traffic_processes(rate: float, metrics_port: int = METRICS_PORT) -> dict[str, list[str]]:
    """Return the demo's background processes by name, with their command lines."""
    return {
        "simulator": _cli(
            "simulate",
            "--rate",
            f"{rate:g}",
            "--daily-shape",
            "--backfill",
            "--refresh-every",
            "0",
            "--metrics-port",
            str(metrics_port),
        ),
        "rollups-refresh": _cli("rollups", "refresh", "--follow", "--every", f"{ROLLUPS_EVERY:g}"),
        "leaderboards-refresh": _cli("leaderboards", "refresh", "--every", f"{LEADERBOARDS_EVERY:g}"),
    }


@stack_app.command("traffic")
def stack_traffic(
    rate: Annotated[float, typer.Option(help="Executions per second, the weekly mean of the daily shape.")] = 0.5,
    metrics_port: Annotated[
        int, typer.Option(min=1024, max=65535, help="Port of the simulator's /metrics (Prometheus scrapes 9464).")
    ] = METRICS_PORT,
) -> None:
    """Keep the demo alive: backfill since the last execution, then run the simulator and refreshers under the stack.

    The simulator (through the real router and breakers), `rollups refresh --follow` and a
    leaderboards refresh every 5 minutes run in the background, pid-tracked, logging under
    .krowoc/logs/, until `krowoc-admin stack down`. A second call starts only what is not running.
    """
    if not 0 < rate <= MAX_RATE:
        raise InvalidInput(f"--rate must be above 0 and at most {MAX_RATE:,.0f} executions per second.")
    configured = settings()
    if not configured.embedded:
        raise StackError("Real servers are configured through KROWOC_* URLs; the demo's traffic runs only embedded.")
    url = database_url()
    connect(url).close()
    # Imported here: the seed's loader brings pyarrow, which the other stack commands never need.
    from devstack.seed import is_seeded

    if not is_seeded(url):
        raise StackError("The database is not seeded: run `krowoc-admin seed --if-empty` first (make demo does).")
    named = traffic_processes(rate, metrics_port)
    simulator = StackProcess(configured, "simulator")
    if simulator.pid() is None:
        # The simulator backfills too, but only once it runs: done here first, the dashboard opens on
        # a last hour that is already there. Its own --backfill then fills the seconds in between.
        services = build_services(configured)
        try:
            engine = TrafficSimulator(services, rate=rate, shape=traffic_shape, refresh_every=None)
            typer.echo(engine.backfill().describe())
        finally:
            services.close()
        typer.echo(refresh.refresh(url).describe())
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    for name, argv in named.items():
        process = StackProcess(configured, name)
        already = process.pid()
        pid = already or process.start(argv, env=env)
        state = "already running" if already else "started"
        typer.echo(f"{name:<21} {state} (pid {pid}), log {process.log}")
