"""Keeps the rollups current: folds new and late-arriving executions in, incrementally.

A refresh finds the executions written since the last one (``id`` above the watermark kept in
``rollup_watermarks``), takes the minutes and hours they fall in (a late execution lands in an
old minute: that minute is refolded too) and recomputes exactly those buckets from the raw table
with the same SQL as ``core.executions.rollups.rebuild_in``. Re-aggregating a bucket from scratch, rather
than adding deltas to it, makes a refresh idempotent: running it twice, or after a crash halfway,
leaves the rollups equal to a from-scratch aggregation.

Two refreshers never run at once: each takes a transaction-level advisory lock and a second one
finds it taken and skips. Executions are written in short transactions, but two writers may
commit their ids out of order; the refresher therefore looks again at the last ``OVERLAP_IDS``
ids below its watermark, which refolds a few buckets for nothing and never misses a row.

The same refresh keeps ``execution_error_hour`` (the top errors of long ranges, per model and
summed per provider and for the platform). That table is not built by the seed: when its own
watermark is missing, the first refresh builds it whole.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

from core.adapters.db import libpq_url
from core.domain.models import ErrorCategory
from core.executions import rollups

LOCK_KEY = 0x6B726F776F63  # "krowoc": the advisory lock every refresher takes.
WATERMARK = "executions"
ERRORS_WATERMARK = rollups.ERRORS_WATERMARK
OVERLAP_IDS = 2_000
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)

# Failed executions per hour, series and error; the series are those of ``execution_latency_hour``
# (each model, each provider's '*', the platform's '*'), so an unfiltered long range reads the
# platform's few rows per hour rather than every model's.
_FAILED_PER_HOUR = """
SELECT bucket_start, coalesce(provider, '*'), coalesce(model, '*'), error_category, error_code, error_message,
       count(*), max(created_at)
FROM (
    SELECT date_trunc('hour', created_at) AS bucket_start, provider, model, error_category,
           coalesce(error_code, '') AS error_code, coalesce(error_message, '') AS error_message, created_at
    FROM prompt_executions
    WHERE {where}
) AS failed
GROUP BY GROUPING SETS ((bucket_start, provider, model, error_category, error_code, error_message),
                        (bucket_start, provider, error_category, error_code, error_message),
                        (bucket_start, error_category, error_code, error_message))
"""

_ERROR_HOUR_COLUMNS = (
    "(bucket_start, provider, model, error_category, error_code, error_message, executions, last_seen_at)"
)

# Sorted by hour, so the table's order follows its primary key and a range reads few pages.
ERROR_HOUR_FROM_RAW = (
    f"INSERT INTO execution_error_hour {_ERROR_HOUR_COLUMNS}"
    + _FAILED_PER_HOUR.format(
        where="error_category = ANY(%(categories)s) AND created_at >= %(start)s AND created_at < %(end)s"
    )
    + "ORDER BY 1"
)

ERROR_HOUR_INCREMENT = (
    f"INSERT INTO execution_error_hour AS e {_ERROR_HOUR_COLUMNS}"
    + _FAILED_PER_HOUR.format(where="id > %(last)s AND id <= %(newest)s AND error_category IS NOT NULL{late}")
    + """ON CONFLICT (bucket_start, provider, model, error_category, error_code, error_message) DO UPDATE
SET executions = e.executions + EXCLUDED.executions, last_seen_at = greatest(e.last_seen_at, EXCLUDED.last_seen_at)
"""
)

CATEGORIES = [category.value for category in ErrorCategory]


@dataclass(frozen=True)
class RollupRefreshReport:
    """What one refresh did."""

    skipped: bool
    new_executions: int = 0
    minutes: int = 0
    hours: int = 0
    last_execution_id: int = 0
    seconds: float = 0.0
    ranges: list[tuple[datetime, datetime]] = field(default_factory=list)

    def describe(self) -> str:
        """Say in one line what the refresh did."""
        if self.skipped:
            return "Another refresher holds the lock; nothing done."
        return (
            f"Folded {self.new_executions:,} execution(s) into {self.minutes} minute(s) and {self.hours} hour(s) "
            f"in {self.seconds * 1000:.0f} ms (watermark id {self.last_execution_id:,})."
        )


def _runs(buckets: Iterable[datetime], step: timedelta) -> list[tuple[datetime, datetime]]:
    """Group sorted bucket starts into contiguous [start, end) ranges."""
    ranges: list[tuple[datetime, datetime]] = []
    for bucket in sorted(set(buckets)):
        if ranges and ranges[-1][1] == bucket:
            ranges[-1] = (ranges[-1][0], bucket + step)
        else:
            ranges.append((bucket, bucket + step))
    return ranges


def _watermark(conn: psycopg.Connection, name: str) -> int | None:
    row = conn.execute("SELECT last_execution_id FROM rollup_watermarks WHERE name = %s", (name,)).fetchone()
    return None if row is None else int(row[0])


def _set_watermark(conn: psycopg.Connection, name: str, last_id: int) -> None:
    conn.execute(
        """
        INSERT INTO rollup_watermarks (name, watermark, last_execution_id, updated_at)
        SELECT %(name)s, coalesce(max(created_at), now()), %(id)s, now()
        FROM prompt_executions WHERE id = %(id)s
        ON CONFLICT (name) DO UPDATE
        SET watermark = EXCLUDED.watermark, last_execution_id = EXCLUDED.last_execution_id,
            updated_at = EXCLUDED.updated_at
        """,
        {"name": name, "id": last_id},
    )


def rebuild_error_hours(conn: psycopg.Connection, start: datetime, end: datetime) -> None:
    """Recompute ``execution_error_hour`` for [start, end) (whole hours) from the raw table."""
    params = {"start": start, "end": end, "categories": CATEGORIES}
    conn.execute("DELETE FROM execution_error_hour WHERE bucket_start >= %(start)s AND bucket_start < %(end)s", params)
    conn.execute(ERROR_HOUR_FROM_RAW, params)


_SCALARS = [
    "executions",
    "latency_count",
    "latency_sum_ms",
    "ttfb_count",
    "ttfb_sum_ms",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "score_count",
    "score_sum",
]

_DELTA_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS krowoc_minute_delta (LIKE execution_rollup_minute, sign smallint)
ON COMMIT DELETE ROWS
"""


def _refold_minutes(conn: psycopg.Connection, start: datetime, end: datetime) -> None:
    """Recompute minute rows from raw, keeping the rows replaced (-1) and their successors (+1) as a delta."""
    params = {"start": start, "end": end}
    conn.execute(
        """
        WITH old AS (
            DELETE FROM execution_rollup_minute WHERE bucket_start >= %(start)s AND bucket_start < %(end)s
            RETURNING *
        )
        INSERT INTO krowoc_minute_delta SELECT *, -1 FROM old
        """,
        params,
    )
    conn.execute(
        f"""
        WITH new AS (
            INSERT INTO execution_rollup_minute ({rollups.ROLLUP_COLUMNS}) {rollups.MINUTE_FROM_RAW}
            RETURNING *
        )
        INSERT INTO krowoc_minute_delta SELECT *, 1 FROM new
        """,
        params,
    )


def _histogram_merge(kind: str) -> str:
    return f"""
    {kind} AS (
        SELECT {rollups.KEYS}, array_agg(b ORDER BY b) AS buckets, array_agg(n ORDER BY b) AS counts
        FROM (
            SELECT {rollups.KEYS}, h.b, CAST(sum(sign * h.n) AS integer) AS n
            FROM parts, unnest({kind}_buckets, {kind}_counts) AS h(b, n)
            GROUP BY {rollups.KEYS}, h.b
            HAVING sum(sign * h.n) <> 0
        ) AS merged
        GROUP BY {rollups.KEYS}
    )"""


# The hour rows of the affected hours, minus the minute rows replaced, plus the minute rows that
# replaced them: the same as re-aggregating the hours from their minutes, for the cost of the
# hour rows and the changed minutes only. The latency maximum only grows (executions are never
# removed from a minute), so the new maximum is the larger of the hour's and the new minutes'.
HOUR_MERGE = f"""
CREATE TEMP TABLE krowoc_hour_merged ON COMMIT DROP AS
WITH parts AS (
    SELECT {rollups.ROLLUP_COLUMNS}, CAST(1 AS smallint) AS sign
    FROM execution_rollup_hour WHERE bucket_start >= %(start)s AND bucket_start < %(end)s
    UNION ALL
    SELECT date_trunc('hour', bucket_start), provider, model, status, error_category,
           {", ".join(_SCALARS[:3])}, latency_max_ms, {", ".join(_SCALARS[3:])},
           latency_buckets, latency_counts, ttfb_buckets, ttfb_counts, sign
    FROM krowoc_minute_delta WHERE bucket_start >= %(start)s AND bucket_start < %(end)s
),
sums AS (
    SELECT {rollups.KEYS}, {", ".join(f"sum(sign * {c}) AS {c}" for c in _SCALARS)},
           max(latency_max_ms) FILTER (WHERE sign > 0) AS latency_max_ms
    FROM parts
    GROUP BY {rollups.KEYS}
    HAVING sum(sign * executions) <> 0
),
{_histogram_merge("latency")},
{_histogram_merge("ttfb")}
SELECT s.bucket_start, s.provider, s.model, s.status, s.error_category,
       s.executions, s.latency_count, s.latency_sum_ms, s.latency_max_ms, s.ttfb_count, s.ttfb_sum_ms,
       s.input_tokens, s.output_tokens, s.cost_usd, s.score_count, s.score_sum,
       coalesce(l.buckets, '{{}}') AS latency_buckets, coalesce(l.counts, '{{}}') AS latency_counts,
       coalesce(t.buckets, '{{}}') AS ttfb_buckets, coalesce(t.counts, '{{}}') AS ttfb_counts
FROM sums AS s
LEFT JOIN latency AS l USING ({rollups.KEYS})
LEFT JOIN ttfb AS t USING ({rollups.KEYS})
"""


def _refold_hours(conn: psycopg.Connection, start: datetime, end: datetime) -> None:
    params = {"start": start, "end": end}
    conn.execute(HOUR_MERGE, params)
    conn.execute("DELETE FROM execution_rollup_hour WHERE bucket_start >= %(start)s AND bucket_start < %(end)s", params)
    conn.execute(f"INSERT INTO execution_rollup_hour ({rollups.ROLLUP_COLUMNS}) SELECT * FROM krowoc_hour_merged")
    conn.execute("DROP TABLE krowoc_hour_merged")
    rollups.rebuild_latency_hour(conn, start, end)


def _unchanged(conn: psycopg.Connection, minutes: list[datetime], last: int) -> set[datetime]:
    """Return the minutes whose rollup already counts every execution up to id ``last`` (none arrived late).

    Executions above ``last`` are new to this refresh and not compared: a minute that also
    received new ones is told apart the same way.
    """
    if not minutes:
        return set()
    rows = conn.execute(
        """
        SELECT m FROM unnest(%(minutes)s::timestamptz[]) AS m
        WHERE (SELECT count(*) FROM prompt_executions
               WHERE created_at >= m AND created_at < m + interval '1 minute' AND id <= %(last)s)
            = (SELECT coalesce(sum(executions), 0) FROM execution_rollup_minute WHERE bucket_start = m)
        """,
        {"minutes": minutes, "last": last},
    ).fetchall()
    return {row[0].astimezone(UTC) for row in rows}


def refresh_in(conn: psycopg.Connection, *, overlap_ids: int = OVERLAP_IDS) -> RollupRefreshReport:
    """Fold the executions written since the last refresh into the rollups, in the caller's transaction."""
    started = time.perf_counter()
    locked = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (LOCK_KEY,)).fetchone()
    if not locked or not locked[0]:
        return RollupRefreshReport(skipped=True)
    conn.execute("SET LOCAL work_mem = '64MB'")
    conn.execute("SET LOCAL jit = off")  # compiling these small statements costs more than running them
    errors_built = _watermark(conn, ERRORS_WATERMARK) is None
    if errors_built:
        # The seed builds the execution rollups but not the error table: build it once, whole.
        conn.execute("TRUNCATE execution_error_hour")
        rebuild_error_hours(conn, rollups.FAR_PAST, rollups.FAR_FUTURE)
    last = _watermark(conn, WATERMARK) or 0
    newest_row = conn.execute("SELECT max(id) FROM prompt_executions").fetchone()
    newest = int(newest_row[0]) if newest_row and newest_row[0] is not None else 0
    newest = max(newest, last)
    rows = conn.execute(
        """
        SELECT date_trunc('minute', created_at) AS minute, count(*) FILTER (WHERE id > %(last)s)
        FROM prompt_executions
        WHERE id > %(since)s AND id <= %(newest)s
        GROUP BY 1
        """,
        {"last": last, "since": max(0, last - overlap_ids), "newest": newest},
    ).fetchall()
    # A minute with a new id changed. Any minute of the overlap, with new ids or without, also
    # received a late commit when its executions up to the watermark outnumber its rollup's: its
    # hour's errors are then recounted from the raw table (the increment only adds new ids).
    touched = {row[0].astimezone(UTC) for row in rows if row[1]}
    seen = sorted(row[0].astimezone(UTC) for row in rows)
    late = set(seen) - _unchanged(conn, seen, last)
    minutes = sorted(touched | late)
    new_executions = sum(int(row[1]) for row in rows)
    hours = {m.replace(minute=0) for m in minutes}
    if not minutes:
        _set_watermark(conn, WATERMARK, newest)
        _set_watermark(conn, ERRORS_WATERMARK, newest)
        return RollupRefreshReport(skipped=False, last_execution_id=newest, seconds=time.perf_counter() - started)
    conn.execute(_DELTA_TABLE)
    minute_ranges = _runs(minutes, MINUTE)
    for start, end in minute_ranges:
        _refold_minutes(conn, start, end)
    hour_ranges = _runs(hours, HOUR)
    for start, end in hour_ranges:
        _refold_hours(conn, start, end)
    # Errors: each new execution is added to its hour once (ids above the watermark); an hour that
    # received a late commit below the watermark is recounted from the raw table instead.
    if not errors_built:
        for start, end in _runs({m.replace(minute=0) for m in late}, HOUR):
            rebuild_error_hours(conn, start, end)
        late_hours = {m.replace(minute=0) for m in late}
        if late_hours:
            conn.execute(
                ERROR_HOUR_INCREMENT.replace(
                    "{late}", " AND date_trunc('hour', created_at) <> ALL(%(late_hours)s::timestamptz[])"
                ),
                {"last": last, "newest": newest, "late_hours": sorted(late_hours)},
            )
        else:
            conn.execute(ERROR_HOUR_INCREMENT.replace("{late}", ""), {"last": last, "newest": newest})
    _set_watermark(conn, WATERMARK, newest)
    _set_watermark(conn, ERRORS_WATERMARK, newest)
    return RollupRefreshReport(
        skipped=False,
        new_executions=new_executions,
        minutes=len(minutes),
        hours=len(hours),
        last_execution_id=newest,
        seconds=time.perf_counter() - started,
        ranges=minute_ranges,
    )


def refresh(url: str, *, overlap_ids: int = OVERLAP_IDS) -> RollupRefreshReport:
    """Fold the executions written since the last refresh into the rollups, in one transaction."""
    with psycopg.connect(libpq_url(url), connect_timeout=5) as conn, conn.transaction():
        return refresh_in(conn, overlap_ids=overlap_ids)


def follow(
    url: str,
    *,
    every: float = 5.0,
    rounds: int | None = None,
    report: Callable[[RollupRefreshReport], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Refresh every ``every`` seconds (``rounds`` times, or until interrupted); return the rounds run."""
    done = 0
    while rounds is None or done < rounds:
        result = refresh(url)
        if report is not None:
            report(result)
        done += 1
        if rounds is None or done < rounds:
            sleep(every)
    return done
