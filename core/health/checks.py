"""Every dependency's health in one shape: pass, warn or fail, with latency and a detail line.

The shape follows the health-check response format for HTTP APIs (status pass/warn/fail, an
observed time and output), so operators read PostgreSQL, its replica, Redis, Unleash and
Prometheus the same way. Checks run concurrently, each bounded by its own timeout.
"""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import redis
from sqlalchemy import Engine, text

from core.adapters.db import WATCHDOG
from core.adapters.redis import RedisClient, servers
from core.config import Settings

TIMEOUT_SECONDS = 2.0
SLOW_MS = 250.0


class HealthStatus(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class HealthCheck:
    component: str
    status: HealthStatus
    latency_ms: float | None
    detail: str
    observed_at: datetime
    required: bool = True


URL = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*)://([^\s/@]*@)?([^\s/?#]*)([^\s?#]*)(\?[^\s#]*)?(#\S*)?")


def without_secrets(text: str) -> str:
    """Return text with every URL in it cut to scheme, host and path: no credentials, query or fragment."""
    return URL.sub(lambda m: f"{m.group(1)}://{m.group(3)}{m.group(4)}", text)


def timed_check(component: str, probe: Callable[[], str], *, required: bool = True) -> HealthCheck:
    """Run one probe and time it: pass with its detail, warn when slow, fail with its error (never raise)."""
    start = time.perf_counter()
    try:
        detail = probe()
    except Exception as exc:  # a failing dependency is a result here, not an error
        return HealthCheck(
            component,
            HealthStatus.FAIL,
            (time.perf_counter() - start) * 1000,
            without_secrets(f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:200] if str(exc) else 'no answer'}"),
            datetime.now(UTC),
            required,
        )
    elapsed = (time.perf_counter() - start) * 1000
    status = HealthStatus.WARN if elapsed > SLOW_MS else HealthStatus.PASS
    suffix = f" (slow: over {SLOW_MS:.0f} ms)" if status is HealthStatus.WARN else ""
    return HealthCheck(component, status, elapsed, without_secrets(detail) + suffix, datetime.now(UTC), required)


def not_configured(component: str, how: str) -> HealthCheck:
    """Report an optional dependency that is not set up, saying how to set it up."""
    return HealthCheck(component, HealthStatus.WARN, None, f"not configured: {how}", datetime.now(UTC), False)


def check_postgres(engine: Engine, component: str = "PostgreSQL") -> HealthCheck:
    """Check that a PostgreSQL answers a query, and reports its version and recovery state."""

    def probe() -> str:
        # A frozen server never enforces its statement timeout: the watchdog cuts the socket instead.
        with engine.connect() as conn, WATCHDOG.guard(conn, TIMEOUT_SECONDS + 1):
            conn.execute(text(f"SET statement_timeout = {int(TIMEOUT_SECONDS * 1000)}"))
            version = conn.execute(text("SHOW server_version")).scalar_one()
            replica = conn.execute(text("SELECT pg_is_in_recovery()")).scalar_one()
        return f"PostgreSQL {version}{' (replica)' if replica else ''}"

    return timed_check(component, probe)


def check_redis(client: RedisClient) -> HealthCheck:
    """Check that Redis answers PING, and reports its version and memory use.

    On a Redis Cluster every primary must answer (each holds part of the keyspace); the memory
    is summed over them and a primary that does not answer is named.
    """

    def probe() -> str:
        nodes = servers(client)
        version, used, used_human = None, 0, "?"
        for node in nodes:
            try:
                node.client.ping()
                info = node.client.info(section="server")
                memory = node.client.info(section="memory")
            except redis.RedisError as exc:
                if len(nodes) == 1:
                    raise
                raise redis.RedisError(f"primary {node.name} did not answer: {exc}") from exc
            version = version or info.get("valkey_version") or info.get("redis_version")
            used += int(memory.get("used_memory", 0))
            used_human = str(memory.get("used_memory_human", "?"))
        if len(nodes) == 1:
            return f"version {version}, {used_human} used"
        return f"cluster of {len(nodes)} primaries, version {version}, {used / 2**20:,.1f} MiB used in all"

    return timed_check("Redis", probe, required=False)


def check_http(component: str, url: str, *, token: str | None = None) -> HealthCheck:
    """Check that an HTTP health endpoint answers 2xx within the timeout."""

    def probe() -> str:
        request = urllib.request.Request(url, headers={"Authorization": token} if token else {})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as answer:
                return f"HTTP {answer.status} from {url}"
        except urllib.error.HTTPError as exc:
            raise ConnectionError(f"HTTP {exc.code} from {url}") from exc

    return timed_check(component, probe, required=False)


def run_checks(checks: list[Callable[[], HealthCheck]]) -> list[HealthCheck]:
    """Run the checks concurrently and returns their results in the order given."""
    with ThreadPoolExecutor(max_workers=max(1, len(checks))) as pool:
        return list(pool.map(lambda check: check(), checks))


def overall(results: list[HealthCheck]) -> HealthStatus:
    """Sum results up: fail when a required part fails, warn when anything is not passing."""
    if any(r.status is HealthStatus.FAIL and r.required for r in results):
        return HealthStatus.FAIL
    if any(r.status is not HealthStatus.PASS for r in results):
        return HealthStatus.WARN
    return HealthStatus.PASS


def dependency_checks(
    settings: Settings,
    primary: Engine,
    replica: Engine | None,
    client: RedisClient,
    unleash_url: str | None,
    prometheus_url: str | None,
) -> list[Callable[[], HealthCheck]]:
    """List the checks of every dependency the dashboard uses, configured or not."""
    checks: list[Callable[[], HealthCheck]] = [lambda: check_postgres(primary)]
    if replica is not None:
        checks.append(lambda: check_postgres(replica, "PostgreSQL replica"))
    else:
        checks.append(lambda: not_configured("PostgreSQL replica", "set KROWOC_DATABASE_REPLICA_URL"))
    checks.append(lambda: check_redis(client))
    if unleash_url:
        checks.append(lambda: check_http("Unleash", unleash_url.rstrip("/").removesuffix("/api") + "/health"))
    else:
        unleash_how = (
            "run `make install` (it brings the stack's Node), then `krowoc-admin stack up`"
            if settings.embedded
            else "set KROWOC_UNLEASH_URL"
        )
        checks.append(lambda: not_configured("Unleash", unleash_how))
    if prometheus_url:
        checks.append(lambda: check_http("Prometheus", prometheus_url.rstrip("/") + "/-/ready"))
    else:
        prometheus_how = (
            "apt-get install prometheus, then `krowoc-admin stack up`"
            if settings.embedded
            else "set KROWOC_PROMETHEUS_URL"
        )
        checks.append(lambda: not_configured("Prometheus", prometheus_how))
    return checks
