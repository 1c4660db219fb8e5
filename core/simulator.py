"""The traffic simulator: executions through the router at a steady rate, into PostgreSQL and Prometheus.

``krowoc-admin simulate --rate 50 --incident provider_outage:openai`` runs R executions per second
through the real router, circuit breakers (state in Redis) and simulated providers, writes them
with ``core.providers.records`` as the platform would, records them in the metrics of
``core.telemetry`` served on ``http://127.0.0.1:<port>/metrics``, and folds them into the rollups
every few seconds so the dashboard sees them within a minute.

Incidents are steered through Redis: the hash ``{prefix}simulator:incidents`` lists the incidents
that should be in force, ``krowoc-admin simulate incident start|end|list`` edits it, and every
running simulator reads it once a second and starts or ends incidents to match. The ``--incident``
given at launch is listed there too, so it can be ended from outside, and is taken off again when
that simulator exits.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import redis
import typer
from prometheus_client import start_http_server
from sqlalchemy import text

from core import rollups_refresh, telemetry
from core.bootstrap import Services, build_services, make_redis
from core.cache.client import RedisClient
from core.config import get_settings
from core.models import InvalidInput
from core.providers.base import CompletionRequest
from core.providers.breaker import STATE_VALUE, CircuitBreakers
from core.providers.records import ExecutionRecord, record_of, write_executions
from core.providers.router import Router
from core.providers.simulated import PROVIDERS, Incident, Incidents, simulated_providers
from core.seed import MODELS
from core.stack import resolve_urls

TICK_SECONDS = 0.25
MAX_RATE = 2000.0
INCIDENTS_KEY = "simulator:incidents"
"""The control channel's hash, under the Redis key prefix: incident -> {"since", "by"} as JSON."""
BY_COMMAND_LINE = "the command line"
INCIDENT_FORMS = "provider_outage:<provider>, rate_limit_storm[:<provider>] or latency_spike:<provider>"

log = telemetry.logger("krowoc.simulator")

# One key each, so they run the same on a single server and on a Redis Cluster.
# Deletes an entry only while it still holds what its writer put there (an operator may have taken it over).
_END_IF_UNCHANGED = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
"""
# Empties the list and returns what it held, in one step.
_END_ALL = """
local names = redis.call('HKEYS', KEYS[1])
redis.call('DEL', KEYS[1])
return names
"""


@dataclass(frozen=True)
class ListedIncident:
    """An incident on the control channel: since when it is listed and who listed it."""

    incident: Incident
    since: datetime | None
    by: str


@dataclass(frozen=True)
class ChannelReading:
    """What the control channel lists: the incidents, and the entries that name none (with why)."""

    incidents: list[ListedIncident]
    unknown: dict[str, str]


def _text(value: bytes | str) -> str:
    # A hand-written entry may hold any bytes: show them, never fail on them.
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _entry(since: datetime, by: str) -> str:
    return json.dumps({"since": since.isoformat(), "by": by})


def _read_entry(incident: Incident, raw: bytes | str | None) -> ListedIncident:
    """Decode an entry's value; a hand-written value still lists its incident, with what could be read."""
    try:
        meta = json.loads(_text(raw or "{}"))
        since = datetime.fromisoformat(meta["since"]) if isinstance(meta.get("since"), str) else None
        by = str(meta.get("by") or "someone unknown")
    except (ValueError, AttributeError):
        since, by = None, "someone unknown"
    return ListedIncident(incident, since, by)


class IncidentChannel:
    """The incidents every running simulator should have in force: a Redis hash shared by all of them.

    Every method raises ``redis.RedisError`` when Redis does not answer; callers decide what that means.
    """

    def __init__(self, client: RedisClient, prefix: str) -> None:
        self.client = client
        self.key = f"{prefix}{INCIDENTS_KEY}"
        self._end_if_unchanged = client.register_script(_END_IF_UNCHANGED)
        self._end_all = client.register_script(_END_ALL)

    def read(self) -> ChannelReading:
        """Read the listed incidents, and apart from them the entries (written by hand) that name none."""
        found: list[ListedIncident] = []
        unknown: dict[str, str] = {}
        for name, raw in self.client.hgetall(self.key).items():
            try:
                found.append(_read_entry(Incident.parse(_text(name)), raw))
            except InvalidInput as exc:
                unknown[_text(name)] = str(exc).rstrip(".")
        return ChannelReading(sorted(found, key=lambda item: str(item.incident)), dict(sorted(unknown.items())))

    def put(self, incident: Incident, *, by: str) -> ListedIncident | None:
        """List an incident as ``by``'s, keeping its start time when already listed; return the entry it replaced."""
        raw = self.client.hget(self.key, str(incident))
        before = None if raw is None else _read_entry(incident, raw)
        since = before.since if before is not None and before.since is not None else datetime.now(UTC)
        self.client.hset(self.key, str(incident), _entry(since, by))
        return before

    def add(self, incident: Incident, *, by: str) -> str | None:
        """List an incident unless it is listed already; return the entry written, None when there was one."""
        entry = _entry(datetime.now(UTC), by)
        return entry if self.client.hsetnx(self.key, str(incident), entry) else None

    def end(self, incident: Incident) -> bool:
        """Take an incident off the list; return whether it was listed."""
        return bool(self.client.hdel(self.key, str(incident)))

    def end_all(self) -> list[str]:
        """Take every incident off the list; return the entries there were."""
        return sorted(_text(name) for name in self._end_all(keys=[self.key]))

    def end_if_unchanged(self, incident: Incident, entry: str) -> bool:
        """Take an incident off the list only while it still holds ``entry``; return whether it did."""
        return bool(self._end_if_unchanged(keys=[self.key], args=[str(incident), entry]))


@dataclass
class SimulatorStats:
    """Counts since the simulator started."""

    executions: int = 0
    failures: int = 0
    written: int = 0
    write_errors: int = 0
    refreshes: int = 0
    by_provider: dict[str, int] = field(default_factory=dict)


class TrafficSimulator:
    """Generates executions at ``rate`` per second and sends them through the router."""

    def __init__(
        self,
        services: Services,
        *,
        rate: float,
        incidents: Incidents | None = None,
        seed: int | None = None,
        fallback_share: float = 0.5,
        refresh_every: float | None = 5.0,
        database_url: str | None = None,
        channel: IncidentChannel | None = None,
    ) -> None:
        if not 0 < rate <= MAX_RATE:
            raise InvalidInput(f"--rate must be above 0 and at most {MAX_RATE:,.0f} executions per second.")
        self.services = services
        self.rate = rate
        self.incidents = incidents or Incidents()
        self.rng = random.Random(seed)
        self.breakers = CircuitBreakers(services.redis, services.settings.redis_key_prefix)
        self.router = Router(dict(simulated_providers(self.incidents, seed=seed)), self.breakers)
        self.fallback_share = fallback_share
        self.refresh_every = refresh_every
        self.database_url = database_url
        self.stats = SimulatorStats()
        self.channel = channel
        self.name = f"the simulator on {socket.gethostname()} (pid {os.getpid()})"
        self._launch_unlisted: Incident | None = None
        self._launched: tuple[Incident, str] | None = None
        self._channel_down = False
        self._unknown_seen: set[str] = set()
        self._models = [(m.provider, m.model) for m in MODELS]
        self._weights = [m.share for m in MODELS]
        self._users, self._prompts = self._population()

    def _population(self) -> tuple[int, int]:
        with self.services.db.read() as conn:
            users = conn.execute(text("SELECT coalesce(max(id), 0) FROM users")).scalar_one()
            prompts = conn.execute(text("SELECT coalesce(max(id), 0) FROM prompts")).scalar_one()
        return max(int(users), 1000), max(int(prompts), 200)

    def request(self) -> CompletionRequest:
        """Draw one execution request."""
        provider, model = self.rng.choices(self._models, weights=self._weights)[0]
        return CompletionRequest(
            user_id=self.rng.randint(1, self._users),
            prompt_id=self.rng.randint(1, self._prompts),
            provider=provider,
            model=model,
            input_tokens=max(5, int(self.rng.lognormvariate(math.log(600), 0.9))),
            request_id=uuid.uuid4().hex,
            allow_fallback=self.rng.random() < self.fallback_share,
        )

    def run_batch(self, count: int, now: datetime) -> list[ExecutionRecord]:
        """Route ``count`` executions created over the last tick and record them in the metrics."""
        records: list[ExecutionRecord] = []
        for i in range(count):
            request = self.request()
            created = now - timedelta(seconds=TICK_SECONDS * (count - i) / max(count, 1))
            with telemetry.request_context(request.request_id):
                result = self.router.execute(request)
            record = record_of(request, result, created)
            records.append(record)
            telemetry.observe_execution(
                provider=record.provider,
                model=record.model,
                status=record.status.value,
                latency_ms=record.latency_ms,
                category=record.error_category,
            )
            http_status = "200" if record.error_category is None else _http_status(record.error_category)
            overhead = self.rng.uniform(0.004, 0.02)
            telemetry.HTTP_REQUEST_DURATION.labels("POST", "/v1/executions", http_status).observe(
                (record.latency_ms or 0) / 1000.0 + overhead
            )
            tier = "memory" if self.rng.random() < 0.5 else "redis"
            telemetry.CACHE_REQUESTS.labels(tier, "prompts", "hit" if self.rng.random() < 0.8 else "miss").inc()
            self.stats.executions += 1
            self.stats.failures += record.error_category is not None
            self.stats.by_provider[record.provider] = self.stats.by_provider.get(record.provider, 0) + 1
        return records

    def publish_breakers(self) -> None:
        """Set the breaker-state gauge of every provider from Redis."""
        for provider in PROVIDERS:
            try:
                status = self.breakers.status(provider)
            except redis.RedisError:
                continue
            telemetry.CIRCUIT_BREAKER_STATE.labels(provider).set(STATE_VALUE[status.effective])

    def launch(self, incident: Incident) -> None:
        """Put the launch incident in force now; the next look at the channel lists it there too."""
        self.incidents.start(incident)
        self._launch_unlisted = incident

    def follow_incidents(self) -> None:
        """Start and end incidents to match the channel; while Redis does not answer, keep the ones in force."""
        if self.channel is None:
            return
        try:
            if self._launch_unlisted is not None:
                entry = self.channel.add(self._launch_unlisted, by=self.name)
                if entry is not None:
                    self._launched = (self._launch_unlisted, entry)
                self._launch_unlisted = None
            reading = self.channel.read()
        except redis.RedisError as exc:
            if not self._channel_down:
                self._channel_down = True
                log.warning(
                    "incident channel unreachable; keeping the incidents in force until it answers",
                    key=self.channel.key,
                    incidents=sorted(str(i) for i in self.incidents.in_force()),
                    error=str(exc)[:200],
                )
            return
        if self._channel_down:
            self._channel_down = False
            log.info("incident channel reachable again", key=self.channel.key)
        for name, reason in reading.unknown.items():
            if name not in self._unknown_seen:
                self._unknown_seen.add(name)
                log.warning("unknown incident on the channel skipped", key=self.channel.key, entry=name, error=reason)
        started, ended = self.incidents.reconcile({item.incident for item in reading.incidents})
        for incident in sorted(started, key=str):
            log.info("incident started", incident=str(incident))
        for incident in sorted(ended, key=str):
            log.info("incident ended", incident=str(incident))

    def withdraw_launch(self) -> None:
        """Take this run's launch incident off the channel, unless it was ended or taken over since."""
        if self.channel is None or self._launched is None:
            return
        incident, entry = self._launched
        try:
            self.channel.end_if_unchanged(incident, entry)
        except redis.RedisError as exc:
            log.warning("launch incident left on the channel", incident=str(incident), error=str(exc)[:200])
        self._launched = None

    def write(self, records: list[ExecutionRecord]) -> None:
        """Write a batch of executions; a failed write is logged and counted, never fatal."""
        try:
            with self.services.db.write() as conn:
                self.stats.written += write_executions(conn, records)
        except Exception as exc:
            self.stats.write_errors += 1
            log.warning("executions not written", error=str(exc)[:200], count=len(records))

    def run(
        self, *, duration: float | None, stop: threading.Event, on_second: Callable[[], None] | None = None
    ) -> None:
        """Run until ``duration`` seconds have passed (forever when None) or ``stop`` is set.

        Once a second: publish the breaker states, call ``on_second`` and follow the incident channel.
        """
        self.follow_incidents()
        started = time.monotonic()
        sent = 0
        last_refresh = started
        last_second = started
        while not stop.is_set():
            elapsed = time.monotonic() - started
            if duration is not None and elapsed >= duration:
                break
            due = int(self.rate * elapsed) - sent
            if due > 0:
                self.write(self.run_batch(due, datetime.now(UTC)))
                sent += due
            now = time.monotonic()
            if now - last_second >= 1.0:
                self.publish_breakers()
                last_second = now
                if on_second is not None:
                    on_second()
                self.follow_incidents()
            if self.refresh_every and self.database_url and now - last_refresh >= self.refresh_every:
                self.refresh()
                last_refresh = now
            stop.wait(TICK_SECONDS)
        self.publish_breakers()
        if self.refresh_every and self.database_url:
            self.refresh()

    def refresh(self) -> None:
        """Fold the new executions into the rollups."""
        assert self.database_url is not None
        try:
            rollups_refresh.refresh(self.database_url)
            self.stats.refreshes += 1
        except Exception as exc:
            log.warning("rollup refresh failed", error=str(exc)[:200])


def _http_status(category: str) -> str:
    return {
        "provider_timeout": "504",
        "provider_rate_limited": "429",
        "provider_unavailable": "503",
        "quota_exceeded": "429",
        "internal": "500",
    }.get(category, "400")


def serve_metrics(port: int) -> Any:
    """Serve the process's Prometheus metrics on http://127.0.0.1:<port>/metrics; return the server."""
    server, _thread = start_http_server(port, addr="127.0.0.1")
    return server


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
    url = resolve_urls(settings).database_url
    channel = IncidentChannel(services.redis, settings.redis_key_prefix)
    simulator = TrafficSimulator(
        services, rate=rate, seed=seed, refresh_every=refresh_every or None, database_url=url, channel=channel
    )
    server = serve_metrics(metrics_port)
    typer.echo(f"Simulating {rate:g} executions/s; metrics on http://127.0.0.1:{metrics_port}/metrics")
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
    client = make_redis(resolve_urls(settings).redis_url, cluster=settings.redis_cluster)
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
