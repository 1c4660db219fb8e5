"""The Overview page's reads: throughput, error rate and p95 latency over time, and window totals.

Every query reads the execution rollups, never the raw ``prompt_executions`` table, so its cost
follows the number of time buckets in the window, not the number of executions:
``execution_rollup_minute`` / ``execution_rollup_hour`` for counts, errors and cost, and for
latency the minute rollup's histograms or, per hour, ``execution_latency_hour`` (the hour
rollup's histograms already merged across statuses and categories).

Conventions shared by the queries here:

- Grain and bounds: as every rollup read (``queries.grain``), the minute rollup for windows of up
  to six hours, the hour rollup beyond, each window widened to whole buckets of its grain.
- Errors: an execution counts as an error when the rollup row has an error category
  (``error_category <> ''``). The platform sets a category exactly on the failed and
  timed-out executions, so this is the same as ``status IN ('failed', 'timed_out')``; counting
  by category keeps the Overview's error rate equal to the sum of the Errors page's
  per-category rates. Cancelled, queued and running executions are not errors, but they count
  in the denominator (all executions of the bucket).
- Latency quantiles come from sparse histograms (``core.domain.histogram``): the counts of each
  histogram bucket are summed, and the quantile is the midpoint of the histogram bucket holding
  the ``percentile_cont`` rank, within 2 % of the exact value. Every execution that has a
  latency counts, whatever its status. Running counts are summed as float8, which is exact for
  whole numbers up to 2**53 and much faster than numeric in window functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import Connection, Result, TextClause, text

from core.domain.histogram import MAX_BUCKET, bucket_midpoint
from core.domain.models import TimeWindow
from queries.grain import Grain, bounds, sql_for

PLATFORM_PER_BUCKET: dict[Grain, str] = {
    # Per minute: every provider, model, status and category of the minute rollup, summed.
    Grain.MINUTE: """
        SELECT bucket_start, sum(executions) AS executions,
               sum(executions) FILTER (WHERE error_category <> '') AS errors,
               sum(latency_count) AS latency_count, sum(latency_sum_ms) AS latency_sum_ms,
               sum(cost_usd) AS cost_usd
        FROM execution_rollup_minute
        WHERE bucket_start >= :start AND bucket_start < :end
        GROUP BY bucket_start""",
    # Per hour: the platform-wide row of the hourly summaries, already summed when it was built.
    Grain.HOUR: """
        SELECT bucket_start, executions, errors, latency_count, latency_sum_ms, cost_usd
        FROM execution_latency_hour
        WHERE bucket_start >= :start AND bucket_start < :end AND provider = '*' AND model = '*'""",
}
"""Platform-wide figures per time bucket: one row per bucket that has executions."""


def _platform_sql(template: str, grain: Grain) -> TextClause:
    # ``{platform}`` becomes this module's per-bucket source of the grain.
    return sql_for(template, grain, platform=PLATFORM_PER_BUCKET[grain])


def _columns(result: Result[Any]) -> dict[str, tuple[Any, ...]]:
    # Column by column: building a frame from Row objects (or inferring a dtype for a column of
    # timezone-aware datetimes) costs several times the query itself on a 720-bucket window.
    names = list(result.keys())
    rows = [tuple(row) for row in result]
    return {name: tuple(row[i] for row in rows) for i, name in enumerate(names)}


def _utc_times(values: tuple[Any, ...]) -> pd.DatetimeIndex:
    return pd.to_datetime(np.array([value.timestamp() for value in values], dtype=np.float64), unit="s", utc=True)


def _numbers(values: tuple[Any, ...], dtype: type[np.int64] | type[np.float64]) -> npt.NDArray[Any]:
    # NULL (None) becomes NaN in a float column.
    return np.asarray(values, dtype=dtype)


# -- executions and errors over time ------------------------------------------------------------

EXECUTIONS_OVER_TIME = """
WITH buckets AS (
    SELECT generate_series(
               CAST(:start AS timestamptz),
               CAST(:end AS timestamptz) - CAST(:step AS interval),
               CAST(:step AS interval)
           ) AS bucket_start
),
per_bucket AS ({platform}
),
elapsed AS (
    -- A bucket still in progress is divided by the minutes it has lasted so far (at least one),
    -- so the newest point of a chart does not dip just because its hour is not over yet.
    SELECT bucket_start,
           CAST(extract(epoch FROM least(bucket_start + CAST(:step AS interval),
                                         greatest(now(), bucket_start + interval '1 minute'))
                                   - bucket_start) AS float8) / 60.0 AS minutes
    FROM buckets
)
SELECT b.bucket_start,
       CAST(coalesce(p.executions, 0) AS bigint) AS executions,
       CAST(coalesce(p.errors, 0) AS bigint) AS errors,
       CAST(coalesce(p.executions, 0) AS float8) / e.minutes AS executions_per_minute,
       CAST(coalesce(p.errors, 0) AS float8) / CAST(nullif(p.executions, 0) AS float8) AS error_rate
FROM buckets AS b
JOIN elapsed AS e USING (bucket_start)
LEFT JOIN per_bucket AS p USING (bucket_start)
ORDER BY b.bucket_start
"""


def executions_over_time(conn: Connection, window: TimeWindow, *, grain: Grain | None = None) -> pd.DataFrame:
    """Return executions, errors, executions per minute and error rate per time bucket, from a rollup.

    One row per bucket of the (whole-bucket) window, empty buckets included with zero
    executions and a missing (NaN) error rate. Columns: ``bucket_start`` (UTC),
    ``executions``, ``errors``, ``executions_per_minute``, ``error_rate`` (0..1).
    """
    chosen, params = bounds(window, grain)
    columns = _columns(conn.execute(_platform_sql(EXECUTIONS_OVER_TIME, chosen), params))
    return pd.DataFrame(
        {
            "bucket_start": _utc_times(columns["bucket_start"]),
            "executions": _numbers(columns["executions"], np.int64),
            "errors": _numbers(columns["errors"], np.int64),
            "executions_per_minute": _numbers(columns["executions_per_minute"], np.float64),
            "error_rate": _numbers(columns["error_rate"], np.float64),
        }
    )


# -- latency quantile over time -----------------------------------------------------------------

LATENCY_QUANTILES: dict[float, str] = {0.5: "p50", 0.9: "p90", 0.95: "p95", 0.99: "p99"}
"""The latency quantiles the queries offer: the ones ``execution_latency_hour`` keeps per hour."""

LATENCY_QUANTILE_PER_MINUTE = """
WITH buckets AS (
    SELECT generate_series(
               CAST(:start AS timestamptz),
               CAST(:end AS timestamptz) - interval '1 minute',
               interval '1 minute'
           ) AS bucket_start
),
entries AS (
    -- The two parallel arrays unnested side by side (set-returning functions in the select list
    -- advance in lockstep, and run much faster than unnest in FROM).
    SELECT bucket_start, unnest(latency_buckets) AS bucket, unnest(latency_counts) AS n
    FROM execution_rollup_minute
    WHERE bucket_start >= :start AND bucket_start < :end
),
histogram AS (
    -- Merge the sparse histograms of every provider, model, status and category per minute.
    SELECT bucket_start, bucket, CAST(sum(n) AS float8) AS n
    FROM entries
    GROUP BY bucket_start, bucket
),
cumulative AS (
    SELECT bucket_start, bucket,
           sum(n) OVER (PARTITION BY bucket_start ORDER BY bucket) AS running,
           sum(n) OVER (PARTITION BY bucket_start) AS total
    FROM histogram
),
quantile AS (
    -- The first histogram bucket whose running count reaches the percentile_cont rank.
    SELECT DISTINCT ON (bucket_start) bucket_start, bucket, total
    FROM cumulative
    WHERE running >= floor(CAST(:q AS float8) * (total - 1)) + 1
    ORDER BY bucket_start, bucket
)
SELECT b.bucket_start,
       CAST(coalesce(q.total, 0) AS bigint) AS latency_count,
       CAST(coalesce(q.bucket, -1) AS integer) AS histogram_bucket
FROM buckets AS b
LEFT JOIN quantile AS q USING (bucket_start)
ORDER BY b.bucket_start
"""

LATENCY_QUANTILE_PER_HOUR = """
WITH buckets AS (
    SELECT generate_series(
               CAST(:start AS timestamptz),
               CAST(:end AS timestamptz) - interval '1 hour',
               interval '1 hour'
           ) AS bucket_start
)
-- The platform-wide row of each hour (provider and model '*') holds the merged histogram's quantiles.
SELECT b.bucket_start,
       CAST(coalesce(l.latency_count, 0) AS bigint) AS latency_count,
       CAST(l.latency_{quantile} AS float8) AS latency_ms
FROM buckets AS b
LEFT JOIN execution_latency_hour AS l
       ON l.bucket_start = b.bucket_start AND l.provider = '*' AND l.model = '*'
ORDER BY b.bucket_start
"""

_MIDPOINTS = np.array([bucket_midpoint(i) for i in range(MAX_BUCKET + 1)], dtype=np.float64)


def bucket_midpoints(buckets: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Map histogram bucket indexes to the latency reported for them; a negative index gives NaN."""
    index = np.asarray(buckets, dtype=np.int64)
    values = _MIDPOINTS[np.clip(index, 0, MAX_BUCKET)]
    return np.where(index >= 0, values, np.nan)


def latency_quantile_over_time(
    conn: Connection, window: TimeWindow, *, q: float = 0.95, grain: Grain | None = None
) -> pd.DataFrame:
    """Return the q-quantile of execution latency per time bucket, q being one of ``LATENCY_QUANTILES``.

    Minutes: the minute rollup's histograms merged per minute. Hours: the platform-wide rows of
    ``execution_latency_hour``, where the merged hourly histograms' quantiles are kept. One row
    per bucket of the (whole-bucket) window. Columns: ``bucket_start`` (UTC), ``latency_count``
    (executions with a latency), ``latency_ms`` (NaN for an empty bucket).
    """
    if q not in LATENCY_QUANTILES:
        offered = ", ".join(str(known) for known in LATENCY_QUANTILES)
        raise ValueError(f"the latency quantile must be one of {offered}, not {q}")
    chosen, params = bounds(window, grain)
    if chosen is Grain.HOUR:
        sql = text(LATENCY_QUANTILE_PER_HOUR.format(quantile=LATENCY_QUANTILES[q]))
        columns = _columns(conn.execute(sql, params))
        latency = _numbers(columns["latency_ms"], np.float64)
    else:
        columns = _columns(conn.execute(text(LATENCY_QUANTILE_PER_MINUTE), {**params, "q": q}))
        latency = bucket_midpoints(columns["histogram_bucket"])
    return pd.DataFrame(
        {
            "bucket_start": _utc_times(columns["bucket_start"]),
            "latency_count": _numbers(columns["latency_count"], np.int64),
            "latency_ms": latency,
        }
    )


def p95_latency_over_time(conn: Connection, window: TimeWindow, *, grain: Grain | None = None) -> pd.DataFrame:
    """Return the p95 execution latency per time bucket (see ``latency_quantile_over_time``)."""
    return latency_quantile_over_time(conn, window, q=0.95, grain=grain)


# -- window totals ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExecutionTotals:
    """Headline figures of a window: volume, failures, latency and cost."""

    window: TimeWindow
    grain: Grain
    executions: int
    errors: int
    latency_count: int
    latency_sum_ms: int
    p95_latency_ms: float | None
    cost_usd: Decimal

    @property
    def error_rate(self) -> float | None:
        """Errors per execution (0..1), or None without executions."""
        return self.errors / self.executions if self.executions else None

    @property
    def mean_latency_ms(self) -> float | None:
        """Mean latency of the executions that have one, or None without any."""
        return self.latency_sum_ms / self.latency_count if self.latency_count else None

    @property
    def cost_per_execution_usd(self) -> Decimal | None:
        """Mean cost of one execution, or None without executions."""
        return self.cost_usd / self.executions if self.executions else None


EXECUTION_SUMS = """
SELECT CAST(coalesce(sum(executions), 0) AS bigint) AS executions,
       CAST(coalesce(sum(errors), 0) AS bigint) AS errors,
       CAST(coalesce(sum(latency_count), 0) AS bigint) AS latency_count,
       CAST(coalesce(sum(latency_sum_ms), 0) AS bigint) AS latency_sum_ms,
       coalesce(sum(cost_usd), 0) AS cost_usd
FROM ({platform}) AS per_bucket
"""

_WINDOW_QUANTILE = """
WITH entries AS (
    SELECT unnest(latency_buckets) AS bucket, unnest(latency_counts) AS n
    FROM {source}
),
histogram AS (
    -- The window's histograms merged into one.
    SELECT bucket, CAST(sum(n) AS float8) AS n FROM entries GROUP BY bucket
),
cumulative AS (
    SELECT bucket, sum(n) OVER (ORDER BY bucket) AS running, sum(n) OVER () AS total
    FROM histogram
)
SELECT CAST(bucket AS integer) AS histogram_bucket
FROM cumulative
WHERE running >= floor(CAST(:q AS float8) * (total - 1)) + 1
ORDER BY bucket
LIMIT 1
"""

WINDOW_LATENCY_QUANTILE: dict[Grain, str] = {
    # Every group's histogram of every minute of the window.
    Grain.MINUTE: _WINDOW_QUANTILE.format(
        source="execution_rollup_minute WHERE bucket_start >= :start AND bucket_start < :end"
    ),
    # The platform-wide hourly histograms (already merged across groups) of the window.
    Grain.HOUR: _WINDOW_QUANTILE.format(
        source="execution_latency_hour WHERE bucket_start >= :start AND bucket_start < :end"
        " AND provider = '*' AND model = '*'"
    ),
}


def execution_totals(conn: Connection, window: TimeWindow, *, grain: Grain | None = None) -> ExecutionTotals:
    """Return executions, errors, latency sum and p95, and cost over a whole-bucket window, from the rollups."""
    chosen, params = bounds(window, grain)
    sums = conn.execute(_platform_sql(EXECUTION_SUMS, chosen), params).one()
    p95_bucket = conn.execute(text(WINDOW_LATENCY_QUANTILE[chosen]), {**params, "q": 0.95}).scalar_one_or_none()
    return ExecutionTotals(
        window=TimeWindow(start=params["start"], end=params["end"]),
        grain=chosen,
        executions=int(sums.executions),
        errors=int(sums.errors),
        latency_count=int(sums.latency_count),
        latency_sum_ms=int(sums.latency_sum_ms),
        p95_latency_ms=None if p95_bucket is None else bucket_midpoint(int(p95_bucket)),
        cost_usd=Decimal(sums.cost_usd),
    )
