"""The Latency page's cached reads: percentiles over time, the distribution and the slowest executions.

Percentiles and the distribution are cached per whole-bucket window, series, provider and model
(``reads``); the slowest executions per exact window.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from core.domain.histogram import RELATIVE_ERROR_BOUND
from core.domain.models import TimeWindow
from dashboard import formats, reads
from dashboard.services import services
from queries import latency as latency_queries
from queries.grain import Grain, grain_for
from queries.latency import Metric, SeriesBy

PERCENTILES = ["p50", "p90", "p95", "p99"]
SHOWN_BY_DEFAULT = ["p50", "p95", "p99"]
SLOWEST = 20


def bound_caption(window: TimeWindow) -> str:
    """Say how close the percentiles are to exact, and at what grain the window is read."""
    return (
        f"Percentiles from the rollups' histograms: within {RELATIVE_ERROR_BOUND:.2%} of the exact value at the "
        f"percentile's rank; one point per {grain_for(window).value}."
    )


def percentiles(
    window: TimeWindow, metric: Metric, by: SeriesBy, provider: str | None, model: str | None
) -> pd.DataFrame:
    """Return p50/p90/p95/p99 per bucket and series of the window."""
    return _percentiles(*reads.scope(window), metric, by, provider, model)


def distribution(window: TimeWindow, metric: Metric, provider: str | None, model: str | None) -> pd.DataFrame:
    """Return the latency histogram of the window."""
    return _distribution(*reads.scope(window), metric, provider, model)


def slowest(window: TimeWindow, provider: str | None, model: str | None) -> pd.DataFrame:
    """Return the slowest executions of the exact window, with their latency written out."""
    frame = _slowest(reads.configuration(), window.start, window.end, provider, model)
    frame["latency"] = [formats.duration_ms(v) for v in frame["latency_ms"]]
    return frame


@reads.cached
def _percentiles(
    settings: str,
    start: datetime,
    end: datetime,
    grain: Grain,
    metric: Metric,
    by: SeriesBy,
    provider: str | None,
    model: str | None,
) -> pd.DataFrame:
    with services().db.read() as conn:
        return latency_queries.latency_percentiles(
            conn, TimeWindow(start=start, end=end), metric=metric, by=by, provider=provider, model=model, grain=grain
        )


@reads.cached
def _distribution(
    settings: str, start: datetime, end: datetime, grain: Grain, metric: Metric, provider: str | None, model: str | None
) -> pd.DataFrame:
    with services().db.read() as conn:
        return latency_queries.latency_distribution(
            conn, TimeWindow(start=start, end=end), metric=metric, provider=provider, model=model, grain=grain
        )


@reads.cached
def _slowest(settings: str, start: datetime, end: datetime, provider: str | None, model: str | None) -> pd.DataFrame:
    with services().db.read() as conn:
        return latency_queries.slowest_executions(
            conn, TimeWindow(start=start, end=end), provider=provider, model=model, limit=SLOWEST
        )
