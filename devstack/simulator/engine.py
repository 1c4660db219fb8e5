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

With a traffic ``shape`` the rate is a weekly mean that follows the seed's daily and weekly wave.
``backfill`` first writes the executions the simulator would have sent since the last one in the
database, newest first, so a demo started again days later still has its last hour of traffic.
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
from core.domain.classifier import ProviderError
from core.domain.exceptions import InvalidInput
from core.domain.models import ErrorCategory
from core.executions import refresh as rollups_refresh
from core.executions.records import ExecutionRecord, record_of, write_executions
from core.providers.base import CompletionRequest
from core.providers.breaker import STATE_VALUE, CircuitBreakers
from core.providers.router import Attempt, RoutedResult, Router
from devstack.seed.profiles import MEAN_SHAPE, MODELS
from devstack.simulator.channel import IncidentChannel
from devstack.simulator.incidents import Incident, Incidents
from devstack.simulator.providers import simulated_providers

TICK_SECONDS = 0.25
MAX_RATE = 2000.0
BACKFILL_MAX_GAP = timedelta(days=7)
"""The longest gap a backfill fills: older traffic than this stays missing (a demo left for weeks)."""
BACKFILL_BATCH = 5_000
BACKFILL_STEP = timedelta(minutes=1)

Shape = Callable[[datetime], float]
"""Relative traffic at a time, with mean ``MEAN_SHAPE`` over a week (``devstack.seed.profiles.traffic_shape``)."""

log = telemetry.logger("krowoc.simulator")


@dataclass
class SimulatorStats:
    """Counts since the simulator started."""

    executions: int = 0
    failures: int = 0
    written: int = 0
    write_errors: int = 0
    refreshes: int = 0
    backfilled: int = 0
    by_provider: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class BackfillReport:
    """What a backfill wrote: the gap it filled (None when there was none) and how many executions."""

    start: datetime | None
    end: datetime | None
    executions: int

    def describe(self) -> str:
        """Say what was backfilled, in one line."""
        if self.start is None or self.end is None:
            return "Nothing to backfill."
        return (
            f"Backfilled {self.executions:,} executions from {self.start:%Y-%m-%d %H:%M:%S} to {self.end:%H:%M:%S} UTC."
        )


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
        shape: Shape | None = None,
    ) -> None:
        if not 0 < rate <= MAX_RATE:
            raise InvalidInput(f"--rate must be above 0 and at most {MAX_RATE:,.0f} executions per second.")
        self.services = services
        self.rate = rate
        self.shape = shape
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

    def rate_at(self, at: datetime) -> float:
        """Return the executions per second due at ``at``: the rate, shaped by the day and week when a shape is set."""
        if self.shape is None:
            return self.rate
        return self.rate * self.shape(at) / MEAN_SHAPE

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
        expected = 0.0  # executions due since the start, integrated over the shaped rate
        last_tick = started
        last_refresh = started
        last_second = started
        while not stop.is_set():
            tick = time.monotonic()
            elapsed = tick - started
            if duration is not None and elapsed >= duration:
                break
            if self.shape is None:
                due = int(self.rate * elapsed) - sent
            else:
                expected += self.rate_at(datetime.now(UTC)) * (tick - last_tick)
                due = int(expected) - sent
            last_tick = tick
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

    def backfill(self, *, max_gap: timedelta = BACKFILL_MAX_GAP, batch: int = BACKFILL_BATCH) -> BackfillReport:
        """Write the executions due between the newest one in the database and now, newest first.

        The gap is filled in passes until less than a second is left, since a pass takes time too.
        Backfilled executions go to the simulated providers directly rather than through the router:
        the breakers keep live state in Redis, and history must not trip them. Nothing is written
        when the database holds no execution (it is not seeded).
        """
        with self.services.db.read() as conn:
            newest = conn.execute(text("SELECT max(created_at) FROM prompt_executions")).scalar_one_or_none()
        if newest is None:
            return BackfillReport(None, None, 0)
        start = newest
        first: datetime | None = None
        end = start
        written = 0
        while True:
            until = datetime.now(UTC)
            if until - end < timedelta(seconds=1):
                break
            begin = max(end, until - max_gap)
            first = first or begin
            written += self._backfill_range(begin, until, batch)
            end = until
        self.stats.backfilled += written
        return BackfillReport(first, end, written) if first is not None else BackfillReport(None, None, 0)

    def _backfill_range(self, begin: datetime, end: datetime, batch: int) -> int:
        """Write the executions due in [begin, end), a minute at a time from the newest minute back."""
        written = 0
        pending: list[ExecutionRecord] = []
        owed = 0.0
        step_end = end
        while step_end > begin:
            step_start = max(begin, step_end - BACKFILL_STEP)
            span = (step_end - step_start).total_seconds()
            owed += self.rate_at(step_start) * span
            count = int(owed)
            owed -= count
            for _ in range(count):
                created = step_start + timedelta(seconds=self.rng.uniform(0, span))
                pending.append(self._backfilled(created))
            if len(pending) >= batch:
                written += self._write_backfill(pending)
                pending = []
            step_end = step_start
        return written + self._write_backfill(pending)

    def _backfilled(self, created: datetime) -> ExecutionRecord:
        request = self.request()
        provider = self.router.providers[request.provider]
        try:
            completion = provider.complete(request, request.model)
        except ProviderError as exc:
            return record_of(
                request, RoutedResult(None, exc, (Attempt(request.provider, request.model, exc),)), created
            )
        return record_of(
            request, RoutedResult(completion, None, (Attempt(request.provider, request.model, None),)), created
        )

    def _write_backfill(self, records: list[ExecutionRecord]) -> int:
        if not records:
            return 0
        with self.services.db.write() as conn:
            return write_executions(conn, records)

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
