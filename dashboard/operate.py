"""The operators' views (Errors, Latency, provider health): cached reads, filters, charts and live panels.

Reads are cached for ``CACHE_TTL`` per configuration, whole-bucket window and filter, like the
Overview's. Live panels read Prometheus; they say "not configured" without a Prometheus URL and
"down" when it does not answer, and the rest of the page keeps working from PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.adapters import prometheus as promql
from core.config import get_settings
from core.domain.catalog import KNOWN_MODELS, PROVIDERS
from core.domain.exceptions import InvalidInput, PrometheusUnavailable, RedisUnavailable
from core.domain.models import Actor, TimeWindow
from core.domain.rbac import Permission, can
from core.providers.breaker import BreakerOverride, BreakerState
from core.providers.service import BreakerChange
from dashboard.services import services, settings_key
from dashboard.time_range import format_moment
from queries import errors, latency
from queries.latency import Metric, SeriesBy
from queries.overview import Grain, grain_for, whole_buckets

CACHE_TTL = timedelta(seconds=30)
LIVE_EVERY = "15s"
EXECUTIONS_PAGE = "/executions"
ALL = "All"

NOT_CONFIGURED = (
    "Prometheus is not configured: set KROWOC_PROMETHEUS_URL (or install Debian's prometheus and run "
    "`krowoc-admin stack up`) to see live API response times and request rates here."
)

CATEGORY_COLORS = {
    "provider_timeout": "#F58518",
    "provider_rate_limited": "#EECA3B",
    "provider_unavailable": "#E45756",
    "provider_auth": "#B279A2",
    "invalid_request": "#72B7B2",
    "content_filtered": "#54A24B",
    "context_length_exceeded": "#4C78A8",
    "quota_exceeded": "#9D755D",
    "internal": "#BAB0AC",
}
SERIES_DASH = {"p50": "dot", "p90": "dashdot", "p95": "solid", "p99": "dash"}
STATE_LABELS = {BreakerState.CLOSED: "closed", BreakerState.HALF_OPEN: "half-open", BreakerState.OPEN: "OPEN"}


# -- the window and filters ----------------------------------------------------------------------


def checked(window: TimeWindow) -> TimeWindow:
    """Refuse a window beyond retention (raises ``InvalidInput``, shown as a message by the app)."""
    retention = timedelta(days=get_settings().execution_retention_days)
    errors.check_retention(window, retention=retention)
    return window


def _link_choice(param: str, options: list[str], what: str) -> str | None:
    value = st.query_params.get(param)
    if value is None or value in options:
        return value
    st.warning(f"The link's {what} `{value}` is not one of {', '.join(options)}; showing all {what}s instead.")
    del st.query_params[param]
    return None


def provider_model_filter(key: str) -> tuple[str | None, str | None]:
    """Draw the provider and model pickers (kept in the link as ``provider`` and ``model``)."""
    linked_provider = _link_choice("provider", list(PROVIDERS), "provider")
    models = (
        list(KNOWN_MODELS.get(linked_provider, ()))
        if linked_provider
        else [m for ms in KNOWN_MODELS.values() for m in ms]
    )
    linked_model = _link_choice("model", models, "model")
    left, right = st.columns(2)
    provider_options = [ALL, *PROVIDERS]
    provider = left.selectbox(
        "Provider", provider_options, index=provider_options.index(linked_provider or ALL), key=f"{key}.provider"
    )
    chosen_provider = None if provider == ALL else provider
    model_options = [ALL, *(KNOWN_MODELS[chosen_provider] if chosen_provider else models)]
    model_index = model_options.index(linked_model) if linked_model in model_options else 0
    model = right.selectbox("Model", model_options, index=model_index, key=f"{key}.model")
    chosen_model = None if model == ALL else model
    for param, value in (("provider", chosen_provider), ("model", chosen_model)):
        if value is None:
            if param in st.query_params:
                del st.query_params[param]
        elif st.query_params.get(param) != value:
            st.query_params[param] = value
    return chosen_provider, chosen_model


def _scope(window: TimeWindow) -> tuple[str, datetime, datetime, Grain]:
    grain = grain_for(window)
    span = whole_buckets(window, grain)
    return settings_key(get_settings()), span.start, span.end, grain


def grain_of(window: TimeWindow) -> Grain:
    """Return the rollup grain the window is read at."""
    return grain_for(window)


def executions_link(
    window: TimeWindow, *, category: str | None = None, provider: str | None = None, model: str | None = None
) -> str:
    """Return the Executions page's link for a category (and provider/model) over a window."""
    params = {"category": category, "provider": provider, "model": model}
    query = {k: v for k, v in params.items() if v}
    query.update({"from": format_moment(window.start), "to": format_moment(window.end)})
    return f"{EXECUTIONS_PAGE}?{urlencode(query)}"


# -- cached reads ---------------------------------------------------------------------------------


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def _errors_by_category(
    key: str, start: datetime, end: datetime, grain: Grain, provider: str | None, model: str | None
) -> pd.DataFrame:
    with services().db.read() as conn:
        return errors.error_rate_by_category(
            conn, TimeWindow(start=start, end=end), grain=grain, provider=provider, model=model
        )


def error_rate_by_category(window: TimeWindow, provider: str | None, model: str | None) -> pd.DataFrame:
    """Return errors per bucket and category of the window."""
    return _errors_by_category(*_scope(window), provider, model)


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def _top_errors(
    key: str, start: datetime, end: datetime, grain: Grain, provider: str | None, model: str | None
) -> pd.DataFrame:
    with services().db.read() as conn:
        return errors.top_errors(
            conn, TimeWindow(start=start, end=end), grain=grain, provider=provider, model=model, limit=5
        )


def top_errors(window: TimeWindow, provider: str | None, model: str | None) -> pd.DataFrame:
    """Return the top error codes and messages per category of the window."""
    return _top_errors(*_scope(window), provider, model)


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def _category_changes(
    key: str, start: datetime, end: datetime, grain: Grain, provider: str | None, model: str | None
) -> pd.DataFrame:
    with services().db.read() as conn:
        return errors.category_changes(
            conn, TimeWindow(start=start, end=end), grain=grain, provider=provider, model=model
        )


def category_changes(window: TimeWindow, provider: str | None, model: str | None) -> pd.DataFrame:
    """Return each category against the previous window of the same length."""
    return _category_changes(*_scope(window), provider, model)


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def _percentiles(
    key: str,
    start: datetime,
    end: datetime,
    grain: Grain,
    metric: Metric,
    by: SeriesBy,
    provider: str | None,
    model: str | None,
) -> pd.DataFrame:
    with services().db.read() as conn:
        return latency.latency_percentiles(
            conn, TimeWindow(start=start, end=end), metric=metric, by=by, provider=provider, model=model, grain=grain
        )


def percentiles(
    window: TimeWindow, metric: Metric, by: SeriesBy, provider: str | None, model: str | None
) -> pd.DataFrame:
    """Return p50/p90/p95/p99 per bucket and series of the window."""
    return _percentiles(*_scope(window), metric, by, provider, model)


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def _distribution(
    key: str, start: datetime, end: datetime, grain: Grain, metric: Metric, provider: str | None, model: str | None
) -> pd.DataFrame:
    with services().db.read() as conn:
        return latency.latency_distribution(
            conn, TimeWindow(start=start, end=end), metric=metric, provider=provider, model=model, grain=grain
        )


def distribution(window: TimeWindow, metric: Metric, provider: str | None, model: str | None) -> pd.DataFrame:
    """Return the latency histogram of the window."""
    return _distribution(*_scope(window), metric, provider, model)


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def _slowest(key: str, start: datetime, end: datetime, provider: str | None, model: str | None) -> pd.DataFrame:
    with services().db.read() as conn:
        return latency.slowest_executions(
            conn, TimeWindow(start=start, end=end), provider=provider, model=model, limit=20
        )


def slowest(window: TimeWindow, provider: str | None, model: str | None) -> pd.DataFrame:
    """Return the 20 slowest executions of the exact window."""
    return _slowest(settings_key(get_settings()), window.start, window.end, provider, model)


# -- charts ---------------------------------------------------------------------------------------


# Figures are built from lists of traces and one layout: adding traces, lines and notes one at a
# time to a Plotly figure re-validates it on each call, which cost a page run tens of ms.


def _spike_markers(spikes: pd.DataFrame, window: TimeWindow) -> dict[str, list[dict[str, Any]]]:
    """Return the layout's shapes and annotations marking each spike: a dotted line and its rates."""
    middle = window.start + (window.end - window.start) / 2
    shapes: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    for moment, rate, baseline in zip(spikes["bucket_start"], spikes["rate"], spikes["baseline"], strict=True):
        shapes.append(
            {"type": "line", "xref": "x", "yref": "y domain", "x0": moment, "x1": moment, "y0": 0, "y1": 1,
             "line": {"color": "#E45756", "dash": "dot", "width": 1}}
        )  # fmt: skip
        notes.append(
            {
                "x": moment,
                "y": 1,
                "yref": "paper",
                "text": f"spike {rate:.1%} (baseline {baseline:.1%})",
                "showarrow": False,
                # Written towards the middle, so a spike near either edge stays inside the plot.
                "xanchor": "left" if moment < middle else "right",
                "font": {"size": 11, "color": "#E45756"},
            }
        )
    return {"shapes": shapes, "annotations": notes}


def stacked_error_rate(by_category: pd.DataFrame, spikes: pd.DataFrame, window: TimeWindow) -> go.Figure:
    """Draw the error rate stacked by category, with a marker where the total leaves its baseline."""
    buckets = by_category["bucket_start"].drop_duplicates().sort_values()
    present = by_category.dropna(subset=["category"])
    traces = []
    for category in sorted(present["category"].unique()):
        rows = present[present["category"] == category].set_index("bucket_start")["rate"]
        traces.append(
            go.Scatter(
                x=buckets,
                y=rows.reindex(buckets).fillna(0.0),
                name=str(category),
                stackgroup="errors",
                mode="lines",
                line={"width": 0.5, "color": CATEGORY_COLORS.get(str(category))},
                hovertemplate="%{y:.2%}<extra>" + str(category) + "</extra>",
            )
        )
    return go.Figure(
        data=traces,
        layout={
            "xaxis": {"range": [window.start, window.end], "title": {"text": "UTC"}},
            "yaxis": {"tickformat": ".1%", "rangemode": "tozero", "title": {"text": "failed / all executions"}},
            "height": 420,
            "hovermode": "x unified",
            "margin": {"l": 10, "r": 10, "t": 30, "b": 10},
            # Below the plot, so the categories never cover the newest minutes or a spike's label.
            "legend": {"orientation": "h", "yanchor": "top", "y": -0.22, "x": 0},
            **_spike_markers(spikes, window),
        },
    )


def percentile_chart(frame: pd.DataFrame, quantiles: list[str], window: TimeWindow, title: str) -> go.Figure:
    """Draw the chosen percentiles over time, one line per series and percentile."""
    traces = []
    for series in sorted(frame["series"].unique()):
        rows = frame[frame["series"] == series]
        for name in quantiles:
            traces.append(
                go.Scatter(
                    x=rows["bucket_start"],
                    y=rows[name],
                    name=f"{series} {name}",
                    mode="lines",
                    line={"dash": SERIES_DASH[name], "width": 1.5},
                    hovertemplate="%{y:,.0f} ms<extra>" + f"{series} {name}" + "</extra>",
                )
            )
    return go.Figure(
        data=traces,
        layout={
            "title": {"text": title},
            "xaxis": {"range": [window.start, window.end], "title": {"text": "UTC"}},
            "yaxis": {"ticksuffix": " ms", "rangemode": "tozero"},
            "height": 380,
            "hovermode": "x unified",
            "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
        },
    )


def distribution_chart(frame: pd.DataFrame, title: str) -> go.Figure:
    """Draw how many executions fell in each latency bucket, on a logarithmic latency axis."""
    figure = go.Figure(
        go.Bar(
            x=(frame["low_ms"] * frame["high_ms"]) ** 0.5,
            y=frame["executions"],
            width=frame["high_ms"] - frame["low_ms"],
            marker={"color": "#F58518"},
            hovertemplate="%{x:,.0f} ms: %{y:,} executions<extra></extra>",
        )
    )
    figure.update_xaxes(type="log", title_text="latency (ms, log scale)")
    figure.update_layout(title=title, height=320, bargap=0, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return figure


# -- live panels (Prometheus) ----------------------------------------------------------------------


def _live_chart(frames: dict[str, pd.DataFrame], title: str, suffix: str, scale: float = 1.0) -> go.Figure:
    traces = []
    for name, frame in frames.items():
        for series in sorted(frame["series"].unique()):
            rows = frame[frame["series"] == series]
            label = name if series == "all" else f"{name} {series}"
            traces.append(go.Scatter(x=rows["time"], y=rows["value"] * scale, name=label, mode="lines"))
    return go.Figure(
        data=traces,
        layout={
            "title": {"text": title},
            "yaxis": {"ticksuffix": suffix, "rangemode": "tozero"},
            "height": 300,
            "hovermode": "x unified",
            "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
        },
    )


def live_panel(draw: Callable[[promql.PrometheusClient, datetime, datetime, timedelta], None]) -> None:
    """Run a Prometheus panel: say "not configured" or "down" instead of drawing when it cannot."""
    client = services().prometheus
    if client is None:
        st.info(NOT_CONFIGURED, icon=":material/sensors_off:")
        return
    start, end, step = promql.last_hour()
    try:
        draw(client, start, end, step)
    except PrometheusUnavailable as exc:
        st.warning(
            f"Prometheus is down: {exc} The PostgreSQL charts on this page are unaffected.", icon=":material/cloud_off:"
        )


def draw_api_live(client: promql.PrometheusClient, start: datetime, end: datetime, step: timedelta) -> None:
    """Draw the last hour's API response times (p50/p95/p99) and request rate from Prometheus."""
    times = {
        f"p{int(q * 100)}": client.api_response_time(q=q, start=start, end=end, step=step) for q in (0.5, 0.95, 0.99)
    }
    left, right = st.columns(2)
    left.plotly_chart(_live_chart(times, "API response time (last hour)", " ms", 1000.0), key="live-api-latency")
    rate = client.request_rate(start=start, end=end, step=step)
    right.plotly_chart(_live_chart({"requests/s": rate}, "API request rate (last hour)", "/s"), key="live-api-rate")


def draw_errors_live(client: promql.PrometheusClient, start: datetime, end: datetime, step: timedelta) -> None:
    """Draw the last hour's error rate by category and request rate from Prometheus."""
    left, right = st.columns(2)
    by_category = client.error_rate_by_category(start=start, end=end, step=step)
    left.plotly_chart(_live_chart({"": by_category}, "Error rate by category (last hour)", "", 1.0), key="live-errors")
    rate = client.request_rate(start=start, end=end, step=step)
    right.plotly_chart(_live_chart({"requests/s": rate}, "API request rate (last hour)", "/s"), key="live-rate")


# -- provider health ------------------------------------------------------------------------------


def provider_health(actor: Actor, *, key: str = "provider-health") -> None:
    """Show every provider's circuit breaker; operators may force one open or closed, with a reason."""
    health = services().provider_health
    try:
        statuses = health.statuses()
    except RedisUnavailable as exc:
        st.warning(str(exc), icon=":material/cloud_off:")
        return
    columns = st.columns(len(statuses))
    for column, status in zip(columns, statuses, strict=True):
        forced = "" if status.override is BreakerOverride.AUTO else f" (forced {status.override.value})"
        column.metric(
            status.provider,
            STATE_LABELS[status.effective] + forced,
            help=f"{status.failures} provider-side failures in a row.",
            border=True,
        )
    open_now = [s.provider for s in statuses if s.effective is BreakerState.OPEN]
    if open_now:
        st.error(f"Circuit breaker open for {', '.join(open_now)}: calls go to fallbacks or fail fast.")
    if not can(actor, Permission.FORCE_BREAKER):
        return
    with st.expander("Force a circuit breaker"), st.form(f"{key}.form", clear_on_submit=False):
        provider = st.selectbox("Provider", list(PROVIDERS), key=f"{key}.provider")
        override = st.radio(
            "Breaker",
            [o.value for o in BreakerOverride],
            format_func={"open": "Force open", "closed": "Force closed", "auto": "Automatic"}.__getitem__,
            horizontal=True,
            key=f"{key}.override",
        )
        reason = st.text_input("Reason (goes into the audit log)", key=f"{key}.reason")
        if st.form_submit_button("Apply"):
            try:
                after = health.force(
                    actor, BreakerChange(provider=provider, override=BreakerOverride(override), reason=reason)
                )
            except InvalidInput as exc:
                st.error(str(exc))
            except RedisUnavailable as exc:
                st.error(f"{exc} The attempt is in the audit log.")
            else:
                st.success(f"{after.provider}: breaker {STATE_LABELS[after.effective]} ({after.override.value}).")


def now_utc() -> datetime:
    """Return the current time in UTC."""
    return datetime.now(UTC)
