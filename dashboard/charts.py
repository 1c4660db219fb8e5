"""Plotly figures for the pages: pure functions from data frames to figures, no Streamlit here."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go

from core.cache.models import KeySample
from core.domain.models import TimeWindow
from dashboard.untrusted import chart
from queries.grain import Grain

THROUGHPUT_COLOR = "#4C78A8"
ERROR_COLOR = "#E45756"
LATENCY_COLOR = "#F58518"

_BUCKET_NAMES = {Grain.MINUTE: "per minute", Grain.HOUR: "per hour"}


def _time_axis_title(grain: Grain) -> str:
    return f"UTC, one point {_BUCKET_NAMES[grain]}"


def throughput_trace(executions: pd.DataFrame) -> go.Scatter:
    """Draw executions per minute over time."""
    return go.Scatter(
        x=executions["bucket_start"],
        y=executions["executions_per_minute"],
        customdata=executions["executions"],
        mode="lines",
        name="Executions / min",
        line={"color": THROUGHPUT_COLOR, "width": 2},
        hovertemplate="%{y:,.1f} / min (%{customdata:,} executions)<extra></extra>",
    )


def error_rate_trace(executions: pd.DataFrame) -> go.Scatter:
    """Draw the share of executions that failed over time (gaps where nothing ran)."""
    return go.Scatter(
        x=executions["bucket_start"],
        y=executions["error_rate"],
        customdata=executions["errors"],
        mode="lines",
        name="Error rate",
        line={"color": ERROR_COLOR, "width": 2},
        connectgaps=False,
        hovertemplate="%{y:.2%} (%{customdata:,} errors)<extra></extra>",
    )


def latency_trace(latency: pd.DataFrame, *, name: str = "p95 latency") -> go.Scatter:
    """Draw a latency quantile over time in milliseconds (gaps where nothing finished)."""
    return go.Scatter(
        x=latency["bucket_start"],
        y=latency["latency_ms"],
        customdata=latency["latency_count"],
        mode="lines",
        name=chart(name),
        line={"color": LATENCY_COLOR, "width": 2},
        connectgaps=False,
        hovertemplate="%{y:,.0f} ms (of %{customdata:,} executions)<extra></extra>",
    )


# The three stacked plots of the Overview: their titles, and each one's share of the height.
_TIMELINE_TITLES = ("Executions per minute", "Error rate", "p95 latency (ms)")
_TIMELINE_GAP = 0.08
_TIMELINE_ROW = (1 - 2 * _TIMELINE_GAP) / 3
_INCIDENT_LINE = {"color": "#b91c1c", "dash": "dot", "width": 1.5}


def overview_timeline(
    executions: pd.DataFrame,
    latency: pd.DataFrame,
    *,
    window: TimeWindow,
    grain: Grain,
    incidents: pd.DataFrame | None = None,
) -> go.Figure:
    """Stack throughput, error rate and p95 latency on one shared time axis covering ``window``.

    Each incident (where the error rate leaves its baseline) is a dotted line across all three.
    The layout is written out (three y domains, the upper time axes matching the lowest) rather
    than made with ``make_subplots`` and ``add_vline``: the same figure in 3 ms instead of 40 ms,
    which every run of the page pays.
    """
    traces = [throughput_trace(executions), error_rate_trace(executions), latency_trace(latency)]
    y_formats: list[dict[str, str]] = [{}, {"tickformat": ".1%"}, {"ticksuffix": " ms"}]
    moments = [] if incidents is None else list(incidents["bucket_start"])
    layout: dict[str, object] = {}
    titles: list[dict[str, object]] = []
    shapes: list[dict[str, object]] = []
    for row, (trace, title, y_format) in enumerate(zip(traces, _TIMELINE_TITLES, y_formats, strict=True), start=1):
        suffix = "" if row == 1 else str(row)
        top = 1 - (row - 1) * (_TIMELINE_ROW + _TIMELINE_GAP)
        trace.update(xaxis=f"x{suffix}", yaxis=f"y{suffix}")
        time_axis: dict[str, object] = {
            "anchor": f"y{suffix}",
            "domain": [0.0, 1.0],
            "range": [window.start, window.end],
        }
        if row < len(traces):
            time_axis.update(matches="x3", showticklabels=False)  # zooming one zooms all
        else:
            time_axis.update(title={"text": _time_axis_title(grain)})
        layout[f"xaxis{suffix}"] = time_axis
        layout[f"yaxis{suffix}"] = {
            "anchor": f"x{suffix}",
            "domain": [top - _TIMELINE_ROW, top],
            "rangemode": "tozero",
            **y_format,
        }
        titles.append(
            {"text": title, "showarrow": False, "font": {"size": 16}, "x": 0.5, "xanchor": "center", "xref": "paper",
             "y": top, "yanchor": "bottom", "yref": "paper"}
        )  # fmt: skip
        shapes.extend(
            {"type": "line", "xref": f"x{suffix}", "yref": f"y{suffix} domain", "x0": moment, "x1": moment,
             "y0": 0, "y1": 1, "line": _INCIDENT_LINE}
            for moment in moments
        )  # fmt: skip
    layout.update(
        annotations=titles,
        shapes=shapes,
        height=720,
        showlegend=False,
        hovermode="x unified",
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    return go.Figure(data=traces, layout=layout)


# -- Errors -----------------------------------------------------------------------------------------

# Figures are built from lists of traces and one layout: adding traces, lines and notes one at a
# time to a Plotly figure re-validates it on each call, which cost a page run tens of ms.

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


# -- Latency ----------------------------------------------------------------------------------------

SERIES_DASH = {"p50": "dot", "p90": "dashdot", "p95": "solid", "p99": "dash"}


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
                    name=chart(f"{series} {name}"),
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
            marker={"color": LATENCY_COLOR},
            hovertemplate="%{x:,.0f} ms: %{y:,} executions<extra></extra>",
        )
    )
    figure.update_xaxes(type="log", title_text="latency (ms, log scale)")
    figure.update_layout(title=title, height=320, bargap=0, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return figure


# -- live panels (Prometheus) -----------------------------------------------------------------------


def live_chart(frames: dict[str, pd.DataFrame], title: str, suffix: str, scale: float = 1.0) -> go.Figure:
    """Draw the last hour of Prometheus series, one line per frame and series, scaled into ``suffix``'s unit."""
    traces = []
    for name, frame in frames.items():
        for series in sorted(frame["series"].unique()):
            rows = frame[frame["series"] == series]
            label = name if series == "all" else f"{name} {series}"
            traces.append(go.Scatter(x=rows["time"], y=rows["value"] * scale, name=chart(label), mode="lines"))
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


# -- Cache ------------------------------------------------------------------------------------------


def hit_ratio_chart(frame: pd.DataFrame, tier_order: list[str]) -> go.Figure:
    """Draw the hit ratio over time, one line per tier (in ``tier_order``) or per tier / namespace series."""
    figure = go.Figure()
    column = "tier" if "tier" in frame.columns else "series"
    names = tier_order if column == "tier" else sorted(frame[column].unique())
    for name in names:
        part = frame[frame[column] == name]
        if not part.empty:
            figure.add_trace(go.Scatter(x=part["minute"], y=part["hit ratio"], name=name, mode="lines+markers"))
    figure.update_layout(
        yaxis={"title": "hit ratio", "range": [0, 1.02], "tickformat": ".0%"},
        xaxis={"title": "minute (UTC)"},
        height=300,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        legend={"orientation": "h"},
    )
    return figure


def ttl_chart(sample: KeySample) -> go.Figure:
    """Draw the TTL spread per namespace (box plots, in hours)."""
    figure = go.Figure()
    for ns in sample.namespaces:
        if ns.ttls:
            figure.add_trace(go.Box(x=[t / 3600 for t in ns.ttls], name=ns.namespace, boxpoints=False))
    figure.update_layout(
        xaxis={"title": "TTL left (hours)"},
        height=240,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        showlegend=False,
    )
    return figure


# -- Users ------------------------------------------------------------------------------------------


def usage_per_day(usage: pd.DataFrame) -> go.Figure:
    """Draw a user's executions and errors per day."""
    traces = [
        go.Scatter(x=usage["day"], y=usage["executions"], name="executions", mode="lines",
                   line={"color": THROUGHPUT_COLOR, "width": 2}),
        go.Scatter(x=usage["day"], y=usage["errors"], name="errors", mode="lines",
                   line={"color": ERROR_COLOR, "width": 2}),
    ]  # fmt: skip
    return go.Figure(
        data=traces,
        layout={
            "height": 220,
            "hovermode": "x unified",
            "yaxis": {"rangemode": "tozero"},
            "margin": {"l": 10, "r": 10, "t": 10, "b": 10},
            "legend": {"orientation": "h"},
        },
    )
