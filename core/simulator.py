"""The traffic simulator: executions through the router at a steady rate, into PostgreSQL and Prometheus.

``krowoc-admin simulate --rate 50 --incident provider_outage:openai`` runs R executions per second
through the real router, circuit breakers (state in Redis) and simulated providers, writes them
with ``core.providers.records`` as the platform would, records them in the metrics of
``core.telemetry`` served on ``http://127.0.0.1:<port>/metrics``, and folds them into the rollups
every few seconds so the dashboard sees them within a minute.
"""

from __future__ import annotations

import math
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import redis
import typer
from prometheus_client import start_http_server
from sqlalchemy import text

from core import rollups_refresh, telemetry
from core.bootstrap import Services, build_services
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

log = telemetry.logger("krowoc.simulator")


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
        """Run until ``duration`` seconds have passed (forever when None) or ``stop`` is set."""
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


def simulate_command(
    rate: Annotated[float, typer.Option(help="Executions per second.")] = 20.0,
    incident: Annotated[
        str | None,
        typer.Option(help="Incident: provider_outage:<provider>, rate_limit_storm, latency_spike:<provider>."),
    ] = None,
    incident_after: Annotated[float, typer.Option(min=0, help="Seconds of normal traffic before the incident.")] = 0.0,
    duration: Annotated[float, typer.Option(min=0, help="Seconds to run; 0 runs until interrupted.")] = 0.0,
    metrics_port: Annotated[int, typer.Option(min=1024, max=65535, help="Port of /metrics on 127.0.0.1.")] = 9464,
    refresh_every: Annotated[float, typer.Option(min=0, help="Seconds between rollup refreshes; 0: never.")] = 5.0,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
) -> None:
    """Run simulated executions through the router into PostgreSQL and Prometheus metrics."""
    if not 0 < rate <= MAX_RATE:
        raise InvalidInput(f"--rate must be above 0 and at most {MAX_RATE:,.0f} executions per second.")
    parsed = Incident.parse(incident) if incident else None
    settings = get_settings()
    telemetry.configure_logging()
    services = build_services(settings)
    url = resolve_urls(settings).database_url
    incidents = Incidents()
    simulator = TrafficSimulator(
        services, rate=rate, incidents=incidents, seed=seed, refresh_every=refresh_every or None, database_url=url
    )
    server = serve_metrics(metrics_port)
    typer.echo(f"Simulating {rate:g} executions/s; metrics on http://127.0.0.1:{metrics_port}/metrics")
    stop = threading.Event()
    started = time.monotonic()

    def every_second() -> None:
        if parsed is not None and parsed not in incidents.active and time.monotonic() - started >= incident_after:
            incidents.start(parsed)
            typer.echo(f"Incident started: {parsed}")

    try:
        every_second()
        simulator.run(duration=duration or None, stop=stop, on_second=every_second)
    except KeyboardInterrupt:
        stop.set()
    finally:
        server.shutdown()
        services.close()
    s = simulator.stats
    typer.echo(f"Ran {s.executions:,} executions ({s.failures:,} failed), wrote {s.written:,}.")
