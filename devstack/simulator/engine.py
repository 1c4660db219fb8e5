"""The traffic simulator: executions through the router at a steady rate, into PostgreSQL and Prometheus.

``krowoc-admin simulate --rate 50 --incident provider_outage:openai`` runs R executions per second
through the real router, circuit breakers (state in Redis) and simulated providers, writes them
with ``core.executions.records`` as the platform would, records them in the metrics of
``core.adapters.telemetry`` served on ``http://127.0.0.1:<port>/metrics``, and folds them into the rollups
every few seconds so the dashboard sees them within a minute.

Incidents are steered through Redis: the hash ``{prefix}simulator:incidents`` lists the incidents
that should be in force, ``krowoc-admin simulate incident start|end|list`` edits it, and every
running simulator reads it once a second and starts or ends incidents to match. The ``--incident``
given at launch is listed there too, so it can be ended from outside, and is taken off again when
that simulator exits.
"""

from __future__ import annotations

import math
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import redis
from sqlalchemy import text

from core.adapters import telemetry
from core.bootstrap import Services
from core.domain.catalog import PROVIDERS
from core.domain.exceptions import InvalidInput
from core.domain.models import ErrorCategory
from core.executions import refresh as rollups_refresh
from core.executions.records import ExecutionRecord, record_of, write_executions
from core.providers.base import CompletionRequest
from core.providers.breaker import STATE_VALUE, CircuitBreakers
from core.providers.router import Router
from devstack.seed.profiles import MODELS
from devstack.simulator.channel import IncidentChannel
from devstack.simulator.incidents import Incident, Incidents
from devstack.simulator.providers import simulated_providers

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


HTTP_STATUS: dict[ErrorCategory, str] = {
    ErrorCategory.PROVIDER_TIMEOUT: "504",
    ErrorCategory.PROVIDER_RATE_LIMITED: "429",
    ErrorCategory.PROVIDER_UNAVAILABLE: "503",
    ErrorCategory.QUOTA_EXCEEDED: "429",
    ErrorCategory.INTERNAL: "500",
}
"""The platform API's answer to an execution that failed in each category (the rest are the caller's: 400)."""


def _http_status(category: str) -> str:
    return HTTP_STATUS.get(ErrorCategory(category), "400")
