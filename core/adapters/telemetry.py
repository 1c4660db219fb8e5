"""The platform's Prometheus metrics, defined once, structured logging, and the request id they share.

Metric names and labels are the contract with ``deploy/prometheus/`` (alert rules) and
``core.adapters.prometheus`` (the dashboard's PromQL): change them together. The request id of
the current context travels into every log line and audit record written inside it.
"""

from __future__ import annotations

import contextvars
import logging
import uuid
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import structlog
from prometheus_client import Counter, Gauge, Histogram, start_http_server

__all__ = [
    "CACHE_REQUESTS",
    "CIRCUIT_BREAKER_STATE",
    "EXECUTION_DURATION",
    "EXECUTION_ERRORS",
    "HTTP_REQUEST_DURATION",
    "configure_logging",
    "logger",
    "observe_execution",
    "request_context",
]

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def current_request_id() -> str:
    """Return the request id set for the current context, or a fresh one when none is set.

    A fresh id is not stored in the context: a long-lived context (a Streamlit session's script
    thread, a test process) would otherwise give every later action the same request id.
    """
    rid = request_id_var.get()
    return rid if rid is not None else uuid.uuid4().hex


# Seconds; covers a 20 ms cache hit up to a 60 s provider timeout.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0, 120.0)

EXECUTION_DURATION = Histogram(
    "krowoc_execution_duration_seconds",
    "Prompt execution latency, by provider, model and final status.",
    ["provider", "model", "status"],
    buckets=LATENCY_BUCKETS,
)
EXECUTION_ERRORS = Counter(
    "krowoc_execution_errors_total",
    "Failed prompt executions, by error category and provider.",
    ["category", "provider"],
)
HTTP_REQUEST_DURATION = Histogram(
    "krowoc_http_request_duration_seconds",
    "API request duration, by method, route and HTTP status.",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
CACHE_REQUESTS = Counter(
    "krowoc_cache_requests",
    "Cache lookups by tier, namespace and outcome (hit, miss, error).",
    ["tier", "namespace", "outcome"],
)
ADMIN_ACTIONS = Counter(
    "krowoc_admin_actions",
    "Admin actions and audited reads, by action and outcome: one per audit row this process wrote.",
    ["action", "outcome"],
)
AUDIT_CHAIN_HEAD_ID = Gauge(
    "krowoc_audit_chain_head_id",
    "The id of the audit log's newest row, as last read by this process.",
)
AUDIT_CHAIN_HEAD_HASH48 = Gauge(
    "krowoc_audit_chain_head_hash48",
    "The first 48 bits of the audit chain's head hash, as a number: a rewrite of the log changes it.",
)
AUDIT_UNRESOLVED = Gauge(
    "krowoc_audit_unresolved",
    "Audit intents without a known outcome: 'unknown' outcomes of the last 24 h, and intents still waiting.",
    ["state"],
)
CIRCUIT_BREAKER_STATE = Gauge(
    "krowoc_circuit_breaker_state",
    "Circuit breaker state per provider: 0 closed, 1 half-open, 2 open.",
    ["provider"],
)


def observe_execution(*, provider: str, model: str, status: str, latency_ms: int | None, category: str | None) -> None:
    """Record one finished execution in the metrics."""
    if latency_ms is not None:
        EXECUTION_DURATION.labels(provider, model, status).observe(latency_ms / 1000.0)
    if category:
        EXECUTION_ERRORS.labels(category, provider).inc()


def _add_request_id(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    rid = request_id_var.get()
    if rid is not None:
        event.setdefault("request_id", rid)
    return event


def configure_logging(level: int = logging.INFO, *, json: bool = True) -> None:
    """Configure structlog: ISO timestamps, level, the current request id, JSON (or console) lines."""
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _add_request_id,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=False,
    )


@contextmanager
def request_context(request_id: str | None = None) -> Iterator[str]:
    """Run a block under a request id: audit records and log lines written inside carry it."""
    rid = request_id or uuid.uuid4().hex
    token = request_id_var.set(rid)
    try:
        yield rid
    finally:
        request_id_var.reset(token)


def logger(name: str) -> Any:
    """Return a structlog logger bound to a component name."""
    return structlog.get_logger(name)


def serve_metrics(port: int, addr: str = "127.0.0.1") -> bool:
    """Serve this process's metrics on http://<addr>:<port>/metrics; False (logged) when the port is taken."""
    try:
        start_http_server(port, addr=addr)
    except OSError as exc:
        logging.getLogger(__name__).warning("metrics not served on %s:%s: %s", addr, port, exc.strerror or exc)
        return False
    return True
