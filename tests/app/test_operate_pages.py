"""The Errors and Latency pages, run in-process by AppTest against a seeded and refreshed database."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from streamlit.testing.v1 import AppTest

from core.config import get_settings
from core.domain.models import AuditOutcome, Role
from core.providers.breaker import BreakerOverride, CircuitBreakers
from dashboard.live import NOT_CONFIGURED
from tests.support.apptest import open_page, run, texts
from tests.support.settings import AUDITOR


@pytest.fixture()
def dashboard_env(
    operate_database_url: str, redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    monkeypatch.setenv("KROWOC_DATABASE_URL", operate_database_url)
    monkeypatch.setenv("KROWOC_REDIS_URL", redis_url)
    monkeypatch.setenv("KROWOC_REDIS_KEY_PREFIX", f"{redis_prefix}pages:")
    monkeypatch.setenv("KROWOC_DEV_LOGIN", "true")
    monkeypatch.delenv("KROWOC_PROMETHEUS_URL", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def figures(at: AppTest) -> list[Any]:
    return list(at.get("plotly_chart"))


def test_errors_page_shows_rates_changes_top_errors_and_drill_down_links(dashboard_env: None) -> None:
    at = open_page("errors.py", params={"range": "24h"})
    assert at.title[0].value == "Errors"
    assert {m.label for m in at.metric} >= {"Executions", "Error rate", "Spikes", "openai", "anthropic"}
    assert len(figures(at)) == 1
    changes, top = at.dataframe[0].value, at.dataframe[1].value
    assert set(changes["trend"]) <= {"new", "escalating", "steady", "falling", "gone"}
    link = changes["executions"].iloc[0]
    assert link.startswith("/executions?category=") and "&from=" in link and "&to=" in link
    assert len(top) > 0 and set(top["category"]) <= set(changes["category"])
    assert NOT_CONFIGURED in texts(at.info)


def test_latency_page_shows_percentiles_ttfb_distribution_and_slowest(dashboard_env: None) -> None:
    at = open_page("latency.py", params={"range": "6h", "provider": "anthropic"})
    assert at.title[0].value == "Latency"
    assert len(figures(at)) == 3
    slowest = at.dataframe[0].value
    assert 0 < len(slowest) <= 20 and set(slowest["provider"]) == {"anthropic"}
    assert list(slowest["latency_ms"]) == sorted(slowest["latency_ms"], reverse=True)
    assert at.selectbox(key="latency.provider").value == "anthropic"
    at.segmented_control(key="latency.by").set_value("model")
    run(at)
    assert len(figures(at)) == 3
    assert NOT_CONFIGURED in texts(at.info)


@pytest.mark.parametrize(
    ("page", "params", "message"),
    [
        ("errors.py", {"range": "custom", "from": "2026-11-26T05:00Z", "to": "2026-11-26T04:00Z"}, "must be after"),
        ("latency.py", {"range": "custom", "from": "2026-11-26T05:00Z", "to": "2026-11-26T04:00Z"}, "must be after"),
        ("errors.py", {"range": "custom", "from": "2025-01-01T00:00Z", "to": "2025-01-02T00:00Z"}, "kept for"),
        ("latency.py", {"range": "custom", "from": "2025-01-01T00:00Z", "to": "2025-01-02T00:00Z"}, "kept for"),
    ],
)
def test_bad_ranges_get_a_clear_message_and_no_traceback(
    dashboard_env: None, page: str, params: dict[str, str], message: str
) -> None:
    at = open_page(page, params=params)
    assert any(message in text for text in texts(at.error)), texts(at.error)
    assert not figures(at)


def test_an_unknown_provider_in_the_link_is_reported_and_ignored(dashboard_env: None) -> None:
    at = open_page("errors.py", params={"range": "6h", "provider": "acme"})
    assert any("provider acme is not one of" in text for text in texts(at.warning))
    assert at.selectbox(key="errors.provider").value == "All"
    assert figures(at)


def test_a_down_prometheus_is_reported_and_the_page_still_works(
    dashboard_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("KROWOC_PROMETHEUS_URL", f"http://127.0.0.1:{port}")
    get_settings.cache_clear()
    at = open_page("latency.py", params={"range": "24h"})
    assert any("Prometheus is down" in text for text in texts(at.warning))
    assert len(figures(at)) == 3


def test_an_operator_forces_a_breaker_open_from_the_errors_page(
    dashboard_env: None, redis_url: str, redis_prefix: str
) -> None:
    at = open_page("errors.py", role=Role.OPERATOR, params={"range": "1h"})
    at.selectbox(key="errors.health.provider").select("mistral")
    at.radio(key="errors.health.override").set_value("open")
    at.text_input(key="errors.health.reason").input("failover drill")
    [apply] = [b for b in at.button if b.label == "Apply"]
    apply.click()
    run(at)
    assert any("mistral: breaker OPEN" in text for text in texts(at.success))
    client = redis.Redis.from_url(redis_url)
    try:
        breakers = CircuitBreakers(client, f"{redis_prefix}pages:")
        assert breakers.status("mistral").override is BreakerOverride.OPEN
        breakers.set_override("mistral", BreakerOverride.AUTO)
    finally:
        client.close()
    from dashboard.services import services

    record = services().audit.latest(AUDITOR)[0]
    assert (record.action, record.outcome, record.reason) == (
        "provider.force_breaker",
        AuditOutcome.SUCCESS,
        "failover drill",
    )


def test_viewers_see_provider_health_but_cannot_force_it(dashboard_env: None) -> None:
    at = open_page("errors.py", role=Role.VIEWER, params={"range": "1h"})
    assert "openai" in {m.label for m in at.metric}
    assert not [b for b in at.button if b.label == "Apply"]
