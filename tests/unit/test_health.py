"""The health summary rules and the HTTP check against a real local server."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis
from sqlalchemy import create_engine

from core.config import Settings
from core.health.checks import (
    HealthCheck,
    HealthStatus,
    check_http,
    dependency_checks,
    not_configured,
    overall,
    without_secrets,
)


def _check(status: HealthStatus, *, required: bool) -> HealthCheck:
    return HealthCheck("x", status, 1.0, "", datetime.now(UTC), required)


def test_a_failing_required_part_fails_the_whole() -> None:
    assert overall([_check(HealthStatus.PASS, required=True), _check(HealthStatus.FAIL, required=True)]) == "fail"


def test_an_optional_part_failing_or_missing_only_warns() -> None:
    assert overall([_check(HealthStatus.PASS, required=True), _check(HealthStatus.FAIL, required=False)]) == "warn"
    assert overall([_check(HealthStatus.PASS, required=True), not_configured("Unleash", "set it")]) == "warn"
    assert overall([_check(HealthStatus.PASS, required=True)]) == "pass"


@pytest.fixture()
def http_server() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/health" else 503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_http_check_passes_on_2xx_and_fails_otherwise(http_server: str) -> None:
    assert check_http("svc", f"{http_server}/health").status is HealthStatus.PASS
    failed = check_http("svc", f"{http_server}/other")
    assert failed.status is HealthStatus.FAIL
    assert "HTTP 503" in failed.detail
    closed = check_http("svc", "http://127.0.0.1:1/health")
    assert closed.status is HealthStatus.FAIL and closed.latency_ms is not None


@pytest.mark.parametrize(
    ("embedded", "unleash_hint", "prometheus_hint"),
    [(True, "Node", "apt-get install prometheus"), (False, "KROWOC_UNLEASH_URL", "KROWOC_PROMETHEUS_URL")],
)
def test_each_missing_part_says_how_to_configure_itself(
    embedded: bool, unleash_hint: str, prometheus_hint: str
) -> None:
    settings = Settings(database_url=None if embedded else "postgresql://u@127.0.0.1:1/x", redis_url=None)
    engine = create_engine("postgresql+psycopg://u@127.0.0.1:1/x")  # never connected: only the missing parts run
    try:
        checks = dependency_checks(settings, engine, None, redis.Redis(port=1), None, None)
        details = {check.component: check.detail for check in (checks[1](), checks[3](), checks[4]())}
    finally:
        engine.dispose()
    assert settings.embedded is embedded
    assert "KROWOC_DATABASE_REPLICA_URL" in details["PostgreSQL replica"]
    assert unleash_hint in details["Unleash"] and "PROMETHEUS" not in details["Unleash"]
    assert prometheus_hint in details["Prometheus"]


def test_urls_lose_their_credentials_query_and_fragment() -> None:
    text = "HTTP 200 from https://ops:s3cret@unleash.internal:4242/api/health?token=abc#x and redis://:pw@cache:6379/0"
    assert without_secrets(text) == "HTTP 200 from https://unleash.internal:4242/api/health and redis://cache:6379/0"
