"""The Latency page's reads: percentiles over time by provider and model, TTFB, distribution, slowest.

Percentiles come from the rollups' sparse histograms (``core.domain.histogram``): counts of each
histogram bucket are summed over the series, and a quantile is the geometric midpoint of the
bucket holding the ``percentile_cont`` rank q * (n - 1). Every histogram bucket is at most 4 %
wide, so a reported percentile is within ``RELATIVE_ERROR_BOUND`` (sqrt(1.04) - 1 = 1.98 %) of
the value at that rank; the tests check it against exact ``percentile_cont`` on the raw rows.

Grain and bounds follow the range (``queries.grain``): the minute rollup's histograms merged per
minute and series for windows of up to six hours, ``execution_latency_hour`` (per hour, provider
and model, with '*' rows for "all", quantiles precomputed) beyond. Latency counts every execution
that has one, whatever its status; TTFB only exists for executions that streamed a first token.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import pandas as pd
from sqlalchemy import Connection, text

from core.domain.exceptions import InvalidInput
from core.domain.histogram import RELATIVE_ERROR_BOUND, bucket_bounds
from core.domain.models import TimeWindow
from queries.errors import check_filters
from queries.frames import frame_of
from queries.grain import PROVIDER_MODEL_FILTER, Grain, bounds, summary_rows
from queries.overview import bucket_midpoints

__all__ = [
    "RELATIVE_ERROR_BOUND",
    "Metric",
    "SeriesBy",
    "latency_distribution",
    "latency_percentiles",
    "slowest_executions",
]

QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99))
SLOWEST_LIMIT = 100


class Metric(StrEnum):
    """What is measured: the whole execution, or the time to its first token."""

    LATENCY = "latency"
    TTFB = "ttfb"


class SeriesBy(StrEnum):
    """One line per: the platform (or the filtered provider/model), each provider, each model."""

    ALL = "all"
    PROVIDER = "provider"
    MODEL = "model"


_SERIES_SQL = {
    SeriesBy.ALL: "'all'",
    SeriesBy.PROVIDER: "provider",
    SeriesBy.MODEL: "provider || '/' || model",
}


def _picks() -> str:
    return ",\n       ".join(
        f"min(bucket) FILTER (WHERE running >= floor({q!r} * (total - 1)) + 1) AS {name}" for name, q in QUANTILES
    )


PERCENTILES_PER_MINUTE = (
    """
WITH entries AS (
    SELECT bucket_start, {series} AS series, unnest({metric}_buckets) AS bucket, unnest({metric}_counts) AS n
    FROM execution_rollup_minute
    WHERE bucket_start >= :start AND bucket_start < :end"""
    + PROVIDER_MODEL_FILTER
    + """
),
histogram AS (
    SELECT bucket_start, series, bucket, CAST(sum(n) AS float8) AS n FROM entries GROUP BY 1, 2, 3
),
cumulative AS (
    SELECT bucket_start, series, bucket,
           sum(n) OVER (PARTITION BY bucket_start, series ORDER BY bucket) AS running,
           sum(n) OVER (PARTITION BY bucket_start, series) AS total
    FROM histogram
)
SELECT bucket_start, series, CAST(max(total) AS bigint) AS count,
       """
    + _picks()
    + """
FROM cumulative
GROUP BY bucket_start, series
ORDER BY bucket_start, series
"""
)

PERCENTILES_PER_HOUR = """
SELECT bucket_start, {series} AS series, {metric}_count AS count,
       {metric}_p50 AS p50, {metric}_p90 AS p90, {metric}_p95 AS p95, {metric}_p99 AS p99
FROM execution_latency_hour
WHERE bucket_start >= :start AND bucket_start < :end AND {metric}_count > 0 AND {rows}
ORDER BY bucket_start, provider, model
"""


def _hour_rows(by: SeriesBy, provider: str | None, model: str | None) -> tuple[str, str]:
    """Which rows of ``execution_latency_hour`` a series choice reads, and its series label."""
    each = {SeriesBy.MODEL: "model", SeriesBy.PROVIDER: "provider"}.get(by)
    return summary_rows(provider, model, each=each), _SERIES_SQL[by]


def latency_percentiles(
    conn: Connection,
    window: TimeWindow,
    *,
    metric: Metric = Metric.LATENCY,
    by: SeriesBy = SeriesBy.ALL,
    provider: str | None = None,
    model: str | None = None,
    grain: Grain | None = None,
) -> pd.DataFrame:
    """p50/p90/p95/p99 of latency (or TTFB) per time bucket and series, within 1.98 % of exact.

    Columns: ``bucket_start`` (UTC), ``series`` ("all", a provider, or "provider/model"),
    ``count`` (executions measured), ``p50``, ``p90``, ``p95``, ``p99`` (milliseconds). A bucket
    without a measured execution has no row. Filtering by a model with ``by=ALL`` at hour grain
    reads that model's rows; a model is one series, so it needs no merging.
    """
    check_filters(provider, model)
    chosen, params = bounds(window, grain)
    params.update(provider=provider, model=model)
    if chosen is Grain.MINUTE:
        sql = PERCENTILES_PER_MINUTE.format(series=_SERIES_SQL[by], metric=metric.value)
        rows = conn.execute(text(sql), params).all()
        frame = frame_of(rows, ["bucket_start", "series", "count", *(n for n, _ in QUANTILES)], times=["bucket_start"])
        for name, _ in QUANTILES:
            frame[name] = bucket_midpoints(frame[name].fillna(-1).astype(np.int64).to_numpy())
    else:
        where, label = _hour_rows(by, provider, model)
        sql = PERCENTILES_PER_HOUR.format(series=label, metric=metric.value, rows=where)
        rows = conn.execute(text(sql), params).all()
        frame = frame_of(rows, ["bucket_start", "series", "count", *(n for n, _ in QUANTILES)], times=["bucket_start"])
    frame["count"] = frame["count"].astype(np.int64)
    for name, _ in QUANTILES:
        frame[name] = frame[name].astype(float)
    return frame


DISTRIBUTION_PER_MINUTE = (
    """
SELECT bucket, CAST(sum(n) AS bigint) AS executions
FROM (
    SELECT unnest({metric}_buckets) AS bucket, unnest({metric}_counts) AS n
    FROM execution_rollup_minute
    WHERE bucket_start >= :start AND bucket_start < :end"""
    + PROVIDER_MODEL_FILTER
    + """
) AS entries
GROUP BY bucket
ORDER BY bucket
"""
)

DISTRIBUTION_PER_HOUR = """
SELECT bucket, CAST(sum(n) AS bigint) AS executions
FROM (
    SELECT unnest({metric}_buckets) AS bucket, unnest({metric}_counts) AS n
    FROM execution_latency_hour
    WHERE bucket_start >= :start AND bucket_start < :end AND {rows}
) AS entries
GROUP BY bucket
ORDER BY bucket
"""


def latency_distribution(
    conn: Connection,
    window: TimeWindow,
    *,
    metric: Metric = Metric.LATENCY,
    provider: str | None = None,
    model: str | None = None,
    grain: Grain | None = None,
) -> pd.DataFrame:
    """How many executions fell in each latency (or TTFB) histogram bucket over the window.

    Columns: ``bucket`` (index), ``low_ms``, ``high_ms`` (the bucket's bounds), ``executions``.
    """
    check_filters(provider, model)
    chosen, params = bounds(window, grain)
    params.update(provider=provider, model=model)
    if chosen is Grain.MINUTE:
        sql = DISTRIBUTION_PER_MINUTE.format(metric=metric.value)
    else:
        sql = DISTRIBUTION_PER_HOUR.format(metric=metric.value, rows=summary_rows(provider, model))
    result = conn.execute(text(sql), params).all()
    frame = pd.DataFrame(result, columns=["bucket", "executions"])
    frame["bucket"] = frame["bucket"].astype(np.int64)
    frame["executions"] = frame["executions"].astype(np.int64)
    edges = [bucket_bounds(int(b)) for b in frame["bucket"]]
    frame["low_ms"] = [low for low, _ in edges]
    frame["high_ms"] = [high for _, high in edges]
    return frame[["bucket", "low_ms", "high_ms", "executions"]]


SLOWEST = (
    """
SELECT id, created_at, provider, model, status, latency_ms, ttfb_ms, error_category, request_id
FROM prompt_executions
WHERE created_at >= :start AND created_at < :end AND latency_ms IS NOT NULL"""
    + PROVIDER_MODEL_FILTER
    + """
ORDER BY latency_ms DESC, created_at DESC
LIMIT :limit
"""
)


def slowest_executions(
    conn: Connection,
    window: TimeWindow,
    *,
    provider: str | None = None,
    model: str | None = None,
    limit: int = 20,
) -> pd.DataFrame:
    """Return the slowest executions of the exact window, slowest first (at most 100).

    Reads the raw table through ``ix_prompt_executions_latency_ms`` (latency descending, then
    created_at) for long windows, or the created_at BRIN index and a top-N sort for short ones;
    the planner picks. Columns: ``id``, ``created_at``, ``provider``, ``model``, ``status``,
    ``latency_ms``, ``ttfb_ms``, ``error_category``, ``request_id``.
    """
    check_filters(provider, model)
    if not 1 <= limit <= SLOWEST_LIMIT:
        raise InvalidInput(f"Show between 1 and {SLOWEST_LIMIT} executions, not {limit}.")
    params = {"start": window.start, "end": window.end, "provider": provider, "model": model, "limit": limit}
    rows = conn.execute(text(SLOWEST), params).all()
    columns = [
        "id",
        "created_at",
        "provider",
        "model",
        "status",
        "latency_ms",
        "ttfb_ms",
        "error_category",
        "request_id",
    ]
    frame = frame_of(rows, columns, times=["created_at"])
    return frame
