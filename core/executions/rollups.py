"""Builds the minute and hour rollups of prompt executions (counts, sums, latency histograms).

Dashboards read these tables, never the raw executions. ``rebuild`` recomputes a time range
from scratch in one transaction: the minute rollup from the raw table in a single scan (one
``GROUPING SETS`` pass yields the per-group sums and both histograms), the hour rollup from the
minute rollup by adding histograms.
"""

from __future__ import annotations

from datetime import datetime

import psycopg

from core.adapters.db import libpq_url
from core.domain.histogram import bucket_sql, midpoint_sql, quantile_rank_sql

KEYS = "bucket_start, provider, model, status, error_category"
ROLLUP_COLUMNS = (
    f"{KEYS}, executions, latency_count, latency_sum_ms, latency_max_ms, ttfb_count, ttfb_sum_ms, "
    "input_tokens, output_tokens, cost_usd, score_count, score_sum, "
    "latency_buckets, latency_counts, ttfb_buckets, ttfb_counts"
)

MINUTE_FROM_RAW = f"""
WITH grouped AS (
    SELECT {KEYS}, lb, tb,
           GROUPING(lb) AS by_ttfb, GROUPING(tb) AS by_latency,
           count(*) AS n, count(latency_ms) AS latency_count,
           coalesce(sum(latency_ms), 0) AS latency_sum_ms, max(latency_ms) AS latency_max_ms,
           count(ttfb_ms) AS ttfb_count, coalesce(sum(ttfb_ms), 0) AS ttfb_sum_ms,
           sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
           sum(cost_usd) AS cost_usd, count(score) AS score_count, coalesce(sum(score), 0) AS score_sum
    FROM (
        SELECT date_trunc('minute', created_at) AS bucket_start, provider, model, status,
               coalesce(error_category, '') AS error_category,
               latency_ms, ttfb_ms, input_tokens, output_tokens, cost_usd, score,
               {bucket_sql("latency_ms")} AS lb, {bucket_sql("ttfb_ms")} AS tb
        FROM prompt_executions
        WHERE created_at >= %(start)s AND created_at < %(end)s
    ) AS raw
    GROUP BY GROUPING SETS (({KEYS}, lb), ({KEYS}, tb))
)
SELECT {KEYS},
       sum(n) FILTER (WHERE by_latency = 1),
       sum(latency_count) FILTER (WHERE by_latency = 1),
       sum(latency_sum_ms) FILTER (WHERE by_latency = 1),
       max(latency_max_ms) FILTER (WHERE by_latency = 1),
       sum(ttfb_count) FILTER (WHERE by_latency = 1),
       sum(ttfb_sum_ms) FILTER (WHERE by_latency = 1),
       sum(input_tokens) FILTER (WHERE by_latency = 1),
       sum(output_tokens) FILTER (WHERE by_latency = 1),
       sum(cost_usd) FILTER (WHERE by_latency = 1),
       sum(score_count) FILTER (WHERE by_latency = 1),
       sum(score_sum) FILTER (WHERE by_latency = 1),
       coalesce(array_agg(lb ORDER BY lb) FILTER (WHERE by_latency = 1 AND lb IS NOT NULL), '{{}}'),
       coalesce(array_agg(n ORDER BY lb) FILTER (WHERE by_latency = 1 AND lb IS NOT NULL), '{{}}'),
       coalesce(array_agg(tb ORDER BY tb) FILTER (WHERE by_ttfb = 1 AND tb IS NOT NULL), '{{}}'),
       coalesce(array_agg(n ORDER BY tb) FILTER (WHERE by_ttfb = 1 AND tb IS NOT NULL), '{{}}')
FROM grouped
GROUP BY {KEYS}
"""

_HOUR_KEYS = "date_trunc('hour', bucket_start) AS bucket_start, provider, model, status, error_category"

HOUR_FROM_MINUTE = f"""
WITH minute AS (
    SELECT * FROM execution_rollup_minute
    WHERE bucket_start >= %(start)s AND bucket_start < %(end)s
),
sums AS (
    SELECT {_HOUR_KEYS},
           sum(executions) AS executions, sum(latency_count) AS latency_count,
           sum(latency_sum_ms) AS latency_sum_ms, max(latency_max_ms) AS latency_max_ms,
           sum(ttfb_count) AS ttfb_count, sum(ttfb_sum_ms) AS ttfb_sum_ms,
           sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
           sum(cost_usd) AS cost_usd, sum(score_count) AS score_count, sum(score_sum) AS score_sum
    FROM minute GROUP BY 1, 2, 3, 4, 5
),
latency AS (
    SELECT {KEYS}, array_agg(b ORDER BY b) AS buckets, array_agg(n ORDER BY b) AS counts
    FROM (
        SELECT {_HOUR_KEYS}, h.b, sum(h.n)::int AS n
        FROM minute, unnest(latency_buckets, latency_counts) AS h(b, n)
        GROUP BY 1, 2, 3, 4, 5, 6
    ) AS merged
    GROUP BY {KEYS}
),
ttfb AS (
    SELECT {KEYS}, array_agg(b ORDER BY b) AS buckets, array_agg(n ORDER BY b) AS counts
    FROM (
        SELECT {_HOUR_KEYS}, h.b, sum(h.n)::int AS n
        FROM minute, unnest(ttfb_buckets, ttfb_counts) AS h(b, n)
        GROUP BY 1, 2, 3, 4, 5, 6
    ) AS merged
    GROUP BY {KEYS}
)
SELECT sums.bucket_start, sums.provider, sums.model, sums.status, sums.error_category,
       sums.executions, sums.latency_count, sums.latency_sum_ms, sums.latency_max_ms,
       sums.ttfb_count, sums.ttfb_sum_ms, sums.input_tokens, sums.output_tokens, sums.cost_usd,
       sums.score_count, sums.score_sum,
       coalesce(latency.buckets, '{{}}'), coalesce(latency.counts, '{{}}'),
       coalesce(ttfb.buckets, '{{}}'), coalesce(ttfb.counts, '{{}}')
FROM sums
LEFT JOIN latency USING ({KEYS})
LEFT JOIN ttfb USING ({KEYS})
"""

QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99))


def _merged_histogram_sql(kind: str) -> str:
    def pick(name: str, q: float) -> str:
        rank = quantile_rank_sql("total", q)
        return f"{midpoint_sql(f'min(b) FILTER (WHERE running >= {rank})')} AS {kind}_{name}"

    picks = ",\n           ".join(pick(name, q) for name, q in QUANTILES)
    return f"""
    {kind} AS (
        SELECT bucket_start, provider, model, max(total) AS {kind}_count,
           {picks},
           array_agg(b ORDER BY b) AS {kind}_buckets, array_agg(n ORDER BY b) AS {kind}_counts
        FROM (
            SELECT *, sum(n) OVER (PARTITION BY bucket_start, provider, model ORDER BY b) AS running,
                      sum(n) OVER (PARTITION BY bucket_start, provider, model) AS total
            FROM (
                SELECT bucket_start, coalesce(provider, '*') AS provider, coalesce(model, '*') AS model,
                       h.b, sum(h.n)::int AS n
                FROM hour, unnest({kind}_buckets, {kind}_counts) AS h(b, n)
                GROUP BY GROUPING SETS ((bucket_start, provider, model, h.b), (bucket_start, provider, h.b),
                                        (bucket_start, h.b))
            ) AS merged
        ) AS cumulative
        GROUP BY bucket_start, provider, model
    )"""


LATENCY_HOUR_COLUMNS = (
    "bucket_start, provider, model, executions, errors, latency_sum_ms, cost_usd, "
    "latency_count, latency_p50, latency_p90, latency_p95, latency_p99, "
    "ttfb_count, ttfb_p50, ttfb_p90, ttfb_p95, ttfb_p99, latency_buckets, latency_counts, ttfb_buckets, ttfb_counts, "
    "error_categories, error_counts"
)

# Errors per hour, series and category, as parallel arrays sorted by category; the grouping sets
# are the same as the series' (a model, a provider's '*', the platform's '*').
ERROR_CATEGORIES_SQL = """
categories AS (
    SELECT bucket_start, provider, model,
           array_agg(error_category ORDER BY error_category) AS error_categories,
           array_agg(n ORDER BY error_category) AS error_counts
    FROM (
        SELECT bucket_start, coalesce(provider, '*') AS provider, coalesce(model, '*') AS model,
               error_category, sum(executions) AS n
        FROM hour WHERE error_category <> ''
        GROUP BY GROUPING SETS ((bucket_start, provider, model, error_category),
                                (bucket_start, provider, error_category), (bucket_start, error_category))
    ) AS per_category
    GROUP BY bucket_start, provider, model
)"""

LATENCY_HOUR_FROM_ROLLUP = f"""
WITH hour AS (
    SELECT bucket_start, provider, model, error_category, executions, latency_sum_ms, cost_usd,
           latency_buckets, latency_counts, ttfb_buckets, ttfb_counts
    FROM execution_rollup_hour WHERE bucket_start >= %(start)s AND bucket_start < %(end)s
),
series AS (
    SELECT bucket_start, coalesce(provider, '*') AS provider, coalesce(model, '*') AS model,
           sum(executions) AS executions,
           coalesce(sum(executions) FILTER (WHERE error_category <> ''), 0) AS errors,
           sum(latency_sum_ms) AS latency_sum_ms, sum(cost_usd) AS cost_usd
    FROM hour GROUP BY GROUPING SETS ((bucket_start, provider, model), (bucket_start, provider), (bucket_start))
),
{_merged_histogram_sql("latency")},
{_merged_histogram_sql("ttfb")},
{ERROR_CATEGORIES_SQL}
SELECT s.bucket_start, s.provider, s.model, s.executions, s.errors, s.latency_sum_ms, s.cost_usd,
       coalesce(l.latency_count, 0), l.latency_p50, l.latency_p90, l.latency_p95, l.latency_p99,
       coalesce(t.ttfb_count, 0), t.ttfb_p50, t.ttfb_p90, t.ttfb_p95, t.ttfb_p99,
       coalesce(l.latency_buckets, '{{}}'), coalesce(l.latency_counts, '{{}}'),
       coalesce(t.ttfb_buckets, '{{}}'), coalesce(t.ttfb_counts, '{{}}'),
       coalesce(c.error_categories, '{{}}'), coalesce(c.error_counts, '{{}}')
FROM series AS s
LEFT JOIN latency AS l USING (bucket_start, provider, model)
LEFT JOIN ttfb AS t USING (bucket_start, provider, model)
LEFT JOIN categories AS c USING (bucket_start, provider, model)
"""


def rebuild_latency_hour(conn: psycopg.Connection, start: datetime, end: datetime) -> None:
    """Recomputes the hourly latency summaries for [start, end) from the hour rollup."""
    params = {"start": start, "end": end}
    conn.execute(
        "DELETE FROM execution_latency_hour WHERE bucket_start >= %(start)s AND bucket_start < %(end)s",
        params,
    )
    conn.execute(f"INSERT INTO execution_latency_hour ({LATENCY_HOUR_COLUMNS}) {LATENCY_HOUR_FROM_ROLLUP}", params)


FAR_PAST = datetime(1970, 1, 1).astimezone()
FAR_FUTURE = datetime(9999, 1, 1).astimezone()


def rebuild_in(conn: psycopg.Connection, start: datetime | None = None, end: datetime | None = None) -> int:
    """Recomputes both rollups for [start, end) (whole hours) inside the caller's transaction."""
    lo = (start or FAR_PAST).replace(minute=0, second=0, microsecond=0)
    hi = end or FAR_FUTURE
    if hi.minute or hi.second or hi.microsecond:
        hi = hi.replace(minute=0, second=0, microsecond=0) + (datetime(2000, 1, 1, 1) - datetime(2000, 1, 1))
    params = {"start": lo, "end": hi}
    conn.execute("SET LOCAL work_mem = '256MB'")
    if start is None and end is None:
        conn.execute("TRUNCATE execution_rollup_minute, execution_rollup_hour, execution_latency_hour")
    else:
        for table in ("execution_rollup_minute", "execution_rollup_hour"):
            conn.execute(f"DELETE FROM {table} WHERE bucket_start >= %(start)s AND bucket_start < %(end)s", params)
    cur = conn.execute(f"INSERT INTO execution_rollup_minute ({ROLLUP_COLUMNS}) {MINUTE_FROM_RAW}", params)
    minute_rows = cur.rowcount
    conn.execute(f"INSERT INTO execution_rollup_hour ({ROLLUP_COLUMNS}) {HOUR_FROM_MINUTE}", params)
    rebuild_latency_hour(conn, lo, hi)
    set_watermark(conn)
    return minute_rows


ERRORS_WATERMARK = "execution_errors"
"""The watermark of ``execution_error_hour``, which ``core.executions.refresh`` keeps."""


def set_watermark(conn: psycopg.Connection) -> None:
    """Record that the rollups include every execution up to the newest one.

    The error table is not rebuilt here: its watermark is dropped, so the next refresh builds it
    whole rather than adding to it only what came after this rebuild.
    """
    conn.execute("DELETE FROM rollup_watermarks WHERE name = %s", (ERRORS_WATERMARK,))
    conn.execute(
        """
        INSERT INTO rollup_watermarks (name, watermark, last_execution_id, updated_at)
        SELECT 'executions', coalesce(max(created_at), now()), coalesce(max(id), 0), now()
        FROM prompt_executions
        ON CONFLICT (name) DO UPDATE
        SET watermark = EXCLUDED.watermark, last_execution_id = EXCLUDED.last_execution_id,
            updated_at = EXCLUDED.updated_at
        """
    )


def rebuild(url: str, start: datetime | None = None, end: datetime | None = None) -> int:
    """Recomputes both rollups for a range (everything when no range is given); returns minute rows."""
    with psycopg.connect(libpq_url(url)) as conn, conn.transaction():
        rows = rebuild_in(conn, start, end)
        conn.execute("ANALYZE execution_rollup_minute")
        return rows
