"""Providers, router, circuit breakers (state in real Redis) and the audited breaker override."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import text

from cli.main import main
from core.bootstrap import Services
from core.domain.exceptions import InvalidInput
from core.domain.models import AuditOutcome, Role
from core.domain.rbac import PermissionDenied
from core.executions.records import record_of
from core.providers.base import CompletionRequest
from core.providers.breaker import BreakerOverride, BreakerState, CircuitBreakers
from core.providers.router import Router
from core.providers.service import BreakerChange
from devstack.simulator import TrafficSimulator
from devstack.simulator.incidents import Incident, Incidents
from devstack.simulator.providers import simulated_providers
from tests.support.settings import AUDITOR, actor


@pytest.fixture()
def breakers(client: redis.Redis, redis_prefix: str, request: pytest.FixtureRequest) -> CircuitBreakers:
    return CircuitBreakers(client, f"{redis_prefix}{request.node.name}:", failure_threshold=3, cooldown_seconds=60)


def _request(provider: str = "openai", model: str = "gpt-4o", *, fallback: bool = True) -> CompletionRequest:
    return CompletionRequest(1, 1, provider, model, 500, "req-1", allow_fallback=fallback)


def test_failures_in_a_row_open_the_breaker_and_a_success_closes_it(breakers: CircuitBreakers) -> None:
    for _ in range(2):
        breakers.record("openai", ok=False)
    assert breakers.status("openai").state is BreakerState.CLOSED
    breakers.record("openai", ok=False)
    assert breakers.status("openai").state is BreakerState.OPEN
    assert not breakers.allow("openai")
    breakers.client.hset(breakers.key("openai"), "opened_at", 0)  # the cooldown has passed
    assert breakers.allow("openai")  # one probe goes out
    assert breakers.status("openai").state is BreakerState.HALF_OPEN
    assert not breakers.allow("openai")  # and only one
    breakers.record("openai", ok=True)
    assert breakers.status("openai").state is BreakerState.CLOSED


def test_an_outage_falls_back_to_another_provider_and_opens_the_breaker(breakers: CircuitBreakers) -> None:
    incidents = Incidents()
    incidents.start(Incident.parse("provider_outage:openai"))
    providers = simulated_providers(incidents, seed=1)
    for provider in providers.values():
        provider.error_rates = {}
    router = Router(dict(providers), breakers)
    results = [router.execute(_request()) for _ in range(10)]
    assert all(r.completion is not None and r.completion.provider == "anthropic" for r in results)
    assert breakers.status("openai").state is BreakerState.OPEN
    # Once open, openai is not called at all: the first attempt is refused by the breaker.
    assert results[-1].attempts[0].error is not None and results[-1].attempts[0].error.code == "circuit_open"
    pinned = router.execute(_request(fallback=False))
    assert pinned.completion is None and pinned.error is not None
    failed = record_of(_request(fallback=False), pinned, datetime.now(UTC))
    assert failed.error_category == "provider_unavailable" and failed.status.value == "failed"


def test_a_request_error_is_neither_retried_nor_counted(breakers: CircuitBreakers) -> None:
    providers = simulated_providers(seed=2)
    providers["openai"].error_rates = {"content_filtered": 1.0}
    result = Router(dict(providers), breakers).execute(_request())
    assert len(result.attempts) == 1 and result.error is not None
    assert record_of(_request(), result, datetime.now(UTC)).error_category == "content_filtered"
    assert breakers.status("openai").failures == 0


def test_a_dead_redis_lets_calls_through_and_is_asked_again_later(caplog: pytest.LogCaptureFixture) -> None:
    # No client-side retries: each call to the dead Redis fails at once, as the breakers' own client does.
    dead = redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.2, socket_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    now = [1000.0]
    breakers = CircuitBreakers(dead, "x:", redis_retry_seconds=5.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="core.providers.breaker"):
        assert breakers.allow("openai")
        # Within the retry interval Redis is left alone: no timeout, no error, no log line per call.
        for _ in range(50):
            assert breakers.allow("anthropic")
            breakers.record("anthropic", ok=False)
        assert (breakers.redis_errors, breakers.redis_skipped) == (1, 100)
        now[0] += 5.0
        breakers.record("openai", ok=False)
    assert breakers.redis_errors == 2  # asked again once the interval was over
    assert len([r for r in caplog.records if "cannot reach Redis" in r.getMessage()]) == 1


def test_breakers_read_redis_again_once_it_answers(redis_url: str, redis_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    now = [1000.0]
    breakers = CircuitBreakers(client, redis_prefix, failure_threshold=1, clock=lambda: now[0])
    try:
        breakers._skip_until = now[0] + 5.0  # as after a failure
        breakers.record("openai", ok=False)  # skipped: Redis is resting
        assert breakers.status("openai").failures == 0
        now[0] += 5.0
        breakers.record("openai", ok=False)
        assert breakers.status("openai").state == "open"
        assert not breakers.allow("openai")
    finally:
        client.delete(breakers.key("openai"))
        client.close()


def test_incidents_are_parsed_and_bad_ones_refused() -> None:
    assert str(Incident.parse("latency_spike:anthropic")) == "latency_spike:anthropic"
    assert Incident.parse("rate_limit_storm").provider is None
    for bad, message in [
        ("provider_outage", "needs a provider"),
        ("provider_outage:acme", "Unknown provider"),
        ("meteor", "Unknown incident"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            Incident.parse(bad)


def test_latency_spike_slows_only_its_provider() -> None:
    incidents = Incidents()
    slow = simulated_providers(incidents, seed=4)
    incidents.start(Incident.parse("latency_spike:anthropic"))
    for provider in slow.values():
        provider.error_rates = {}
    req = _request("anthropic", "claude-sonnet-4")
    spiked = sorted(slow["anthropic"].complete(req, "claude-sonnet-4").latency_ms for _ in range(200))
    incidents.stop()
    normal = sorted(slow["anthropic"].complete(req, "claude-sonnet-4").latency_ms for _ in range(200))
    assert spiked[100] > 3 * normal[100]


def test_operators_force_a_breaker_and_it_is_audited(services: Services) -> None:
    health = services.provider_health
    operator = actor(Role.OPERATOR)
    forced = health.force(operator, BreakerChange(provider="openai", override=BreakerOverride.OPEN, reason="drill"))
    assert forced.effective is BreakerState.OPEN
    assert not health.breakers.allow("openai")
    record = services.audit.latest(AUDITOR)[0]
    assert (record.action, record.outcome, record.target_id) == (
        "provider.force_breaker",
        AuditOutcome.SUCCESS,
        "openai",
    )
    assert record.before is not None and record.before["override"] == "auto"
    assert record.after is not None and record.after["override"] == "open"
    health.force(operator, BreakerChange(provider="openai", override=BreakerOverride.AUTO, reason="drill over"))
    assert health.breakers.allow("openai")
    assert {s.provider for s in health.statuses()} == {"openai", "anthropic", "google", "mistral"}


def test_support_may_not_force_a_breaker_and_bad_input_changes_nothing(services: Services) -> None:
    health = services.provider_health
    with pytest.raises(PermissionDenied):
        health.force(actor(Role.SUPPORT), BreakerChange(provider="openai", override=BreakerOverride.OPEN, reason="x"))
    assert services.audit.latest(AUDITOR)[0].outcome is AuditOutcome.DENIED
    with pytest.raises(InvalidInput, match="Unknown provider 'acme'"):
        health.force(actor(Role.OPERATOR), BreakerChange(provider="acme", override=BreakerOverride.OPEN, reason="x"))
    assert services.audit.latest(AUDITOR)[0].outcome is AuditOutcome.INVALID
    with pytest.raises(InvalidInput, match="reason"):
        health.force(actor(Role.OPERATOR), BreakerChange(provider="openai", override=BreakerOverride.OPEN))
    assert health.breakers.status("openai").override is BreakerOverride.AUTO


def test_the_simulator_writes_routed_executions_to_postgres(services: Services) -> None:
    incidents = Incidents()
    simulator = TrafficSimulator(services, rate=100, incidents=incidents, seed=5, refresh_every=None)
    incidents.start(Incident.parse("provider_outage:google"))
    records = simulator.run_batch(300, datetime.now(UTC))
    simulator.write(records)
    with services.db.read() as conn:
        rows = conn.execute(
            text("SELECT provider, error_category, count(*) FROM prompt_executions GROUP BY 1, 2")
        ).all()
    counts = {(p, c): n for p, c, n in rows}
    assert sum(counts.values()) == 300 == simulator.stats.written
    assert counts.get(("google", "provider_unavailable"), 0) > 0


def test_simulate_refuses_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--incident", "provider_outage:acme", "--duration", "1"]) == 2
    assert "Unknown provider 'acme'" in capsys.readouterr().err
    assert main(["simulate", "--rate", "0", "--duration", "1"]) == 2
    assert "--rate" in capsys.readouterr().err
