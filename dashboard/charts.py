"""Plotly figures for the pages: pure functions from data frames to figures, no Streamlit here."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from core.domain.models import TimeWindow
from queries.overview import Grain

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
        name=name,
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
