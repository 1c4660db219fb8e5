"""The simulator, a real Prometheus scraping it and the PromQL adapter, end to end.

A session fixture starts ``krowoc-admin simulate`` with an OpenAI outage on a fresh database and
a real Prometheus (Debian's package) scraping it every second; both are stopped by pid after.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import psycopg
import pytest
import redis
import requests

from core.adapters.prometheus import PrometheusClient, PrometheusQuery
from core.config import PROJECT_ROOT, Settings
from core.domain.exceptions import PrometheusUnavailable
from core.providers.breaker import BreakerOverride, CircuitBreakers
from devstack.prometheus import PrometheusServer
from tests.support.databases import RunDatabases
from tests.support.network import free_port
from tests.support.polling import wait_for
from tests.support.tools import require_binary

# Its tests share one simulator and one Prometheus: one worker runs them all.
pytestmark = pytest.mark.xdist_group("prometheus")

RULES = PROJECT_ROOT / "deploy" / "prometheus" / "rules" / "krowoc.yml"
INSTALL = "apt-get install -y prometheus"


@dataclass(frozen=True)
class Live:
    prometheus_url: str
    metrics_url: str
    database_url: str
    redis_url: str
    redis_prefix: str


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait for Prometheus or the simulator, counting a server that does not answer yet as "not yet"."""
    wait_for(check, what, timeout=timeout, interval=0.5, ignoring=(requests.RequestException, PrometheusUnavailable))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="session")
def live(
    databases: RunDatabases,
    redis_url: str,
    redis_prefix: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Live]:
    """Run a simulator with an OpenAI outage and a real Prometheus scraping it every second."""
    binary = require_binary("prometheus", INSTALL)
    database_url = databases.migrated()
    prefix = f"{redis_prefix}live:"
    metrics_port, prom_port = free_port(), free_port()
    root = tmp_path_factory.mktemp("prometheus")
    config = root / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files:\n  - {RULES}\n"
        "scrape_configs:\n  - job_name: krowoc\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{metrics_port}']\n"
    )
    env = {
        **os.environ,
        "KROWOC_DATABASE_URL": database_url,
        "KROWOC_REDIS_URL": redis_url,
        "KROWOC_REDIS_KEY_PREFIX": prefix,
    }
    simulator = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "simulate", "--rate", "40", "--metrics-port", str(metrics_port),
         "--refresh-every", "2", "--seed", "3", "--incident", "provider_outage:openai"],
        env=env, cwd=PROJECT_ROOT, stdout=(root / "simulator.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    prometheus = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={root / 'data'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        cwd=root, stdout=(root / "prometheus.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        prom_url = f"http://127.0.0.1:{prom_port}"
        _wait(lambda: requests.get(metrics_url, timeout=1).ok, 60, "the simulator did not serve /metrics")
        client = PrometheusClient(prom_url, failure_threshold=1000)
        query = PrometheusQuery("sum(rate(krowoc_execution_errors_total[1m]))")
        _wait(lambda: not client.instant(query).empty, 90, "Prometheus did not scrape the simulator")
        per_provider = PrometheusQuery(
            "sum by (provider) (rate(krowoc_execution_duration_seconds_count[1m])) > 0", "provider"
        )
        _wait(
            lambda: (
                client.breaker_states().get("openai") == 2
                and {"anthropic", "google"} <= set(client.instant(per_provider)["series"])
            ),
            90,
            "Prometheus did not see the open breaker and traffic on every fallback provider",
        )
        yield Live(prom_url, metrics_url, database_url, redis_url, prefix)
    finally:
        _stop(simulator)
        _stop(prometheus)


def test_the_simulator_serves_every_platform_metric(live: Live) -> None:
    body = requests.get(live.metrics_url, timeout=2).text
    for name in (
        "krowoc_execution_duration_seconds_bucket",
        "krowoc_execution_errors_total",
        "krowoc_http_request_duration_seconds_bucket",
        "krowoc_cache_requests_total",
        "krowoc_circuit_breaker_state",
    ):
        assert name in body, name
    assert 'krowoc_circuit_breaker_state{provider="openai"} 2.0' in body


def test_promql_error_rate_latency_request_rate_and_breakers(live: Live) -> None:
    client = PrometheusClient(live.prometheus_url)
    step = timedelta(seconds=1)

    def recent_rates() -> pd.DataFrame:
        end = datetime.now(UTC)
        return client.error_rate_by_category(start=end - timedelta(minutes=5), end=end, step=step)

    # The simulator may have run for only a few seconds: wait until a 1-minute rate exists.
    _wait(lambda: "provider_unavailable" in set(recent_rates()["series"]), 60, "no error rate in Prometheus yet")
    end = datetime.now(UTC)
    start = end - timedelta(minutes=5)
    rates = client.error_rate_by_category(start=start, end=end, step=step)
    assert "provider_unavailable" in set(rates["series"])
    assert rates.loc[rates["series"] == "provider_unavailable", "value"].max() > 0.05
    p95 = client.execution_latency(q=0.95, start=start, end=end, step=step)
    assert p95["value"].dropna().between(0.02, 120).all() and not p95.empty
    by_provider = client.execution_latency(q=0.5, start=start, end=end, step=step, by_provider=True)
    assert {"anthropic", "google"} <= set(by_provider["series"])
    assert not client.api_response_time(q=0.95, start=start, end=end, step=step).empty
    assert client.request_rate(start=start, end=end, step=step)["value"].max() > 0
    assert client.breaker_states()["openai"] == 2
    assert client.healthy()


def test_the_outage_opens_the_breaker_in_redis_and_shows_in_postgres(live: Live) -> None:
    client = redis.Redis.from_url(live.redis_url)
    try:
        breakers = CircuitBreakers(client, live.redis_prefix)
        assert breakers.status("openai").effective.value == "open"
        assert breakers.status("anthropic").effective.value != "open"
    finally:
        client.close()

    def folded() -> bool:
        with psycopg.connect(live.database_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            row = conn.execute(
                "SELECT coalesce(sum(executions) FILTER (WHERE error_category = 'provider_unavailable'), 0), "
                "coalesce(sum(executions), 0) FROM execution_rollup_minute WHERE provider = 'openai'"
            ).fetchone()
        return row is not None and row[0] > 0 and row[0] == row[1]

    _wait(folded, 30, "the rollups did not show the openai outage")


def test_postgres_and_prometheus_agree_on_the_error_rate(live: Live) -> None:
    """The share of failed executions since the simulator started, from the rollups and from PromQL.

    The rollups trail the counters by a refresh (two seconds here), so the comparison waits for a few
    hundred executions, enough for that lag not to move the share by more than the tolerance.
    """

    def folded() -> tuple[int, int]:
        with psycopg.connect(live.database_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            row = conn.execute(
                "SELECT coalesce(sum(executions) FILTER (WHERE error_category <> ''), 0), "
                "coalesce(sum(executions), 0) FROM execution_rollup_minute"
            ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    _wait(lambda: folded()[1] >= 600, 90, "the rollups did not reach 600 executions")
    row = folded()
    postgres_rate = float(row[0]) / float(row[1])
    body = requests.get(
        f"{live.prometheus_url}/api/v1/query",
        params={"query": "sum(krowoc_execution_errors_total) / sum(krowoc_execution_duration_seconds_count)"},
        timeout=2,
    ).json()
    prometheus_rate = float(body["data"]["result"][0]["value"][1])
    assert prometheus_rate == pytest.approx(postgres_rate, abs=0.05)


def test_an_unreachable_prometheus_is_reported_and_then_not_called(tmp_path: Path) -> None:
    client = PrometheusClient(f"http://127.0.0.1:{free_port()}", timeout_seconds=0.5, failure_threshold=2)
    for _ in range(2):
        with pytest.raises(PrometheusUnavailable, match="did not answer"):
            client.request_rate(
                start=datetime.now(UTC) - timedelta(minutes=5), end=datetime.now(UTC), step=timedelta(seconds=30)
            )
    assert client.breaker_open
    with pytest.raises(PrometheusUnavailable, match="not asking again"):
        client.execution_rate()
    assert not client.healthy()


def test_the_stack_starts_and_stops_only_its_own_prometheus(tmp_path: Path) -> None:
    require_binary("prometheus", INSTALL)
    settings = Settings(state_dir=tmp_path)
    server = PrometheusServer(settings, port=free_port())
    assert server.up() is None
    try:
        assert server.status().running
        assert requests.get(f"{server.url}/-/ready", timeout=5).ok
        assert server.up() is None  # a second start is a no-op
    finally:
        assert server.down()
    assert not server.status().running
    assert not server.down()
    other = PrometheusServer(settings, port=free_port(), root=tmp_path / "elsewhere")
    assert not other.down()


def test_a_forced_breaker_is_seen_by_every_instance(redis_url: str, redis_prefix: str) -> None:
    first, second = redis.Redis.from_url(redis_url), redis.Redis.from_url(redis_url)
    try:
        a = CircuitBreakers(first, f"{redis_prefix}shared:")
        b = CircuitBreakers(second, f"{redis_prefix}shared:")
        a.set_override("mistral", BreakerOverride.OPEN)
        assert not b.allow("mistral")
        a.set_override("mistral", BreakerOverride.AUTO)
        assert b.allow("mistral")
    finally:
        first.close()
        second.close()
