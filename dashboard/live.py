"""The live panels: the last hour from Prometheus, refreshed while the page is open.

A panel says "not configured" without a Prometheus URL and "down" when Prometheus does not
answer; either way the rest of the page keeps working from PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import streamlit as st

from core.adapters import prometheus as promql
from core.domain.exceptions import PrometheusUnavailable
from dashboard import charts
from dashboard.services import services

LIVE_EVERY = "15s"
"""How often a live panel redraws (``st.fragment(run_every=...)``)."""

NOT_CONFIGURED = (
    "Prometheus is not configured: set KROWOC_PROMETHEUS_URL (or install Debian's prometheus and run "
    "`krowoc-admin stack up`) to see live API response times and request rates here."
)

Draw = Callable[[promql.PrometheusClient, datetime, datetime, timedelta], None]


def live_panel(draw: Draw) -> None:
    """Run a Prometheus panel over the last hour; say "not configured" or "down" instead of drawing when it cannot."""
    client = services().prometheus
    if client is None:
        st.info(NOT_CONFIGURED, icon=":material/sensors_off:")
        return
    start, end, step = promql.last_hour()
    try:
        draw(client, start, end, step)
    except PrometheusUnavailable as exc:
        # Only this panel depends on Prometheus: it says so, and the page's other charts stay.
        st.warning(
            f"Prometheus is down: {exc} The PostgreSQL charts on this page are unaffected.", icon=":material/cloud_off:"
        )


def api_response_times(client: promql.PrometheusClient, start: datetime, end: datetime, step: timedelta) -> None:
    """Draw the API response times (p50/p95/p99) and request rate from Prometheus."""
    times = {
        f"p{int(q * 100)}": client.api_response_time(q=q, start=start, end=end, step=step) for q in (0.5, 0.95, 0.99)
    }
    rate = client.request_rate(start=start, end=end, step=step)
    left, right = st.columns(2)
    left.plotly_chart(charts.live_chart(times, "API response time (last hour)", " ms", 1000.0), key="live-api-latency")
    right.plotly_chart(
        charts.live_chart({"requests/s": rate}, "API request rate (last hour)", "/s"), key="live-api-rate"
    )


def api_errors(client: promql.PrometheusClient, start: datetime, end: datetime, step: timedelta) -> None:
    """Draw the API error rate by category and request rate from Prometheus."""
    by_category = client.error_rate_by_category(start=start, end=end, step=step)
    rate = client.request_rate(start=start, end=end, step=step)
    left, right = st.columns(2)
    left.plotly_chart(charts.live_chart({"": by_category}, "Error rate by category (last hour)", ""), key="live-errors")
    right.plotly_chart(charts.live_chart({"requests/s": rate}, "API request rate (last hour)", "/s"), key="live-rate")
