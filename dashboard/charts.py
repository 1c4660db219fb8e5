"""Plotly figures for the pages: pure functions from data frames to figures, no Streamlit here."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.models import TimeWindow
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
    """
    figure = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=("Executions per minute", "Error rate", "p95 latency (ms)"),
    )
    figure.add_trace(throughput_trace(executions), row=1, col=1)
    figure.add_trace(error_rate_trace(executions), row=2, col=1)
    figure.add_trace(latency_trace(latency), row=3, col=1)
    figure.update_xaxes(range=[window.start, window.end])
    figure.update_xaxes(title_text=_time_axis_title(grain), row=3, col=1)
    figure.update_yaxes(rangemode="tozero", row=1, col=1)
    figure.update_yaxes(tickformat=".1%", rangemode="tozero", row=2, col=1)
    figure.update_yaxes(ticksuffix=" ms", rangemode="tozero", row=3, col=1)
    for start in [] if incidents is None else incidents["bucket_start"]:
        figure.add_vline(x=start, line_dash="dot", line_color="#b91c1c", line_width=1.5, row="all", col=1)
    figure.update_layout(
        height=720,
        showlegend=False,
        hovermode="x unified",
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
    return figure
