"""``krowoc-admin simulate``: run the traffic simulator, and start, end and list its incidents."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import redis
import typer

from core.adapters import telemetry
from core.adapters.redis import make_redis
from core.bootstrap import build_services
from core.config import get_settings
from core.domain.exceptions import InvalidInput
from core.endpoints import resolve_endpoints
from devstack.seed.profiles import traffic_shape
from devstack.simulator.channel import BY_COMMAND_LINE, INCIDENT_FORMS, IncidentChannel, ListedIncident
from devstack.simulator.engine import MAX_RATE, TrafficSimulator
from devstack.simulator.incidents import Incident
from devstack.simulator.metrics import serve_metrics

simulate_app = typer.Typer(
    invoke_without_command=True,
    subcommand_metavar="[incident start|end|list ...]",
)
incident_app = typer.Typer(help="Start, end and list incidents in every running simulator.", no_args_is_help=True)
simulate_app.add_typer(incident_app, name="incident")


@simulate_app.callback()
def simulate_command(
    ctx: typer.Context,
    rate: Annotated[float, typer.Option(help="Executions per second.")] = 20.0,
    incident: Annotated[str | None, typer.Option(help=f"Incident: {INCIDENT_FORMS}.")] = None,
    incident_after: Annotated[float, typer.Option(min=0, help="Seconds of normal traffic before the incident.")] = 0.0,
    duration: Annotated[float, typer.Option(min=0, help="Seconds to run; 0 runs until interrupted.")] = 0.0,
    metrics_port: Annotated[int, typer.Option(min=1024, max=65535, help="Port of /metrics on 127.0.0.1.")] = 9464,
    refresh_every: Annotated[float, typer.Option(min=0, help="Seconds between rollup refreshes; 0: never.")] = 5.0,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    daily_shape: Annotated[
        bool, typer.Option(help="Follow the seed's daily and weekly wave; --rate is then the weekly mean.")
    ] = False,
    backfill: Annotated[
        bool, typer.Option(help="First write the executions due since the newest one in the database (up to 7 days).")
    ] = False,
) -> None:
    """Run simulated executions through the router into PostgreSQL and Prometheus metrics.

    The simulator follows the incidents listed with `simulate incident start|end`, once a second.
    """
    if ctx.invoked_subcommand is not None:
        sources = {name: ctx.get_parameter_source(name) for name in ctx.params}
        given = [name for name, source in sources.items() if source is not None and source.name == "COMMANDLINE"]
        if given:
            option = "--" + given[0].replace("_", "-")
            raise InvalidInput(f"{option} is an option of a simulator run; `simulate incident ...` takes none.")
        return
    if not 0 < rate <= MAX_RATE:
        raise InvalidInput(f"--rate must be above 0 and at most {MAX_RATE:,.0f} executions per second.")
    parsed = Incident.parse(incident) if incident else None
    settings = get_settings()
    telemetry.configure_logging()
    services = build_services(settings)
    url = resolve_endpoints(settings).database_url
    channel = IncidentChannel(services.redis, settings.redis_key_prefix)
    simulator = TrafficSimulator(
        services,
        rate=rate,
        seed=seed,
        refresh_every=refresh_every or None,
        database_url=url,
        channel=channel,
        shape=traffic_shape if daily_shape else None,
    )
    if backfill:
        typer.echo(simulator.backfill().describe())
    server = serve_metrics(metrics_port)
    shaped = " (weekly mean, in the daily shape)" if daily_shape else ""
    typer.echo(f"Simulating {rate:g} executions/s{shaped}; metrics on http://127.0.0.1:{metrics_port}/metrics")
    typer.echo(f"Following the incidents listed under {channel.key} (`krowoc-admin simulate incident --help`).")
    stop = threading.Event()
    # Terminated (by `kill`, a service manager), stop as on Ctrl-C: the launch incident comes off the list.
    on_term = signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    started = time.monotonic()
    launch_due = parsed

    def every_second() -> None:
        nonlocal launch_due
        if launch_due is not None and time.monotonic() - started >= incident_after:
            simulator.launch(launch_due)
            typer.echo(f"Incident started: {launch_due}")
            launch_due = None

    try:
        every_second()
        simulator.run(duration=duration or None, stop=stop, on_second=every_second)
    except KeyboardInterrupt:
        stop.set()
    finally:
        signal.signal(signal.SIGTERM, on_term)
        simulator.withdraw_launch()
        server.shutdown()
        services.close()
    s = simulator.stats
    typer.echo(f"Ran {s.executions:,} executions ({s.failures:,} failed), wrote {s.written:,}.")


@contextmanager
def _incident_channel() -> Iterator[IncidentChannel]:
    """Open the control channel on the configured Redis; when Redis does not answer, say so and exit with 1."""
    settings = get_settings()
    client = make_redis(resolve_endpoints(settings).redis_url, cluster=settings.redis_cluster)
    try:
        yield IncidentChannel(client, settings.redis_key_prefix)
    except redis.RedisError as exc:
        hint = "run `krowoc-admin stack up`" if settings.redis_url is None else "check KROWOC_REDIS_URL"
        typer.echo(f"error: cannot reach Redis: {exc} ({hint})", err=True)
        raise SystemExit(1) from exc
    finally:
        client.close()


def _since(item: ListedIncident) -> str:
    return "since an unknown time" if item.since is None else f"since {item.since:%Y-%m-%d %H:%M:%S} UTC"


@incident_app.command("start")
def incident_start(incident: Annotated[str, typer.Argument(help=f"The incident: {INCIDENT_FORMS}.")]) -> None:
    """Start an incident in every running simulator.

    Each puts it in force within a second and keeps it until it is ended.
    """
    wanted = Incident.parse(incident)
    with _incident_channel() as channel:
        before = channel.put(wanted, by=BY_COMMAND_LINE)
    if before is None:
        typer.echo(f"Started {wanted}: running simulators put it in force within a second.")
    elif before.by == BY_COMMAND_LINE:
        typer.echo(f"{wanted} is already in force ({_since(before)}); nothing changed.")
    else:
        typer.echo(f"{wanted} was in force as the launch incident of {before.by}; it now stays until ended.")


@incident_app.command("end")
def incident_end(
    incident: Annotated[str | None, typer.Argument(help=f"The incident: {INCIDENT_FORMS}.")] = None,
    end_all: Annotated[bool, typer.Option("--all", help="End every listed incident.")] = False,
) -> None:
    """End an incident, or all, in every running simulator.

    Each ends it within a second.
    """
    if end_all and incident is not None:
        raise InvalidInput("Name one incident or pass --all, not both.")
    if not end_all:
        if incident is None:
            raise InvalidInput("Name the incident to end (for example provider_outage:openai), or pass --all.")
        target = Incident.parse(incident)
        with _incident_channel() as channel:
            ended = channel.end(target)
        typer.echo(f"Ended {target}." if ended else f"{target} was not in force; nothing changed.")
        return
    with _incident_channel() as channel:
        names = channel.end_all()
    typer.echo(f"Ended {', '.join(names)}." if names else "No incident was in force; nothing changed.")


@incident_app.command("list")
def incident_list() -> None:
    """List the incidents in force, since when and who started them."""
    with _incident_channel() as channel:
        reading = channel.read()
    if not reading.incidents:
        typer.echo("No incident is in force: running simulators send normal traffic.")
    for item in reading.incidents:
        typer.echo(f"{item.incident!s:<28} {_since(item)}, started by {item.by}")
    for name, reason in reading.unknown.items():
        typer.echo(f"{name:<28} skipped by the simulators ({reason}); `simulate incident end --all` clears it")
