"""The Errors page's reads: error rate by category over time, top errors, new and escalating categories.

Grain and bounds follow the range as on the Overview (``queries.grain``): the minute rollup
for windows of up to six hours, the hourly summaries beyond (``execution_latency_hour``: one
row per hour and series with its errors per category), each window widened to whole buckets.
An error is an execution with an error category (failed or timed out); the rate's denominator is
every execution of the bucket. Top errors read the failed executions themselves for short windows
(the ``(error_category, created_at)`` index reaches them without touching the rest) and the
``execution_error_hour`` rollup (per model, and summed per provider and platform) for long ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, text

from core.domain.catalog import KNOWN_MODELS, PROVIDERS
from core.domain.exceptions import InvalidInput
from core.domain.models import ErrorCategory, TimeWindow
from queries.frames import frame_of
from queries.grain import PROVIDER_MODEL_FILTER, Grain, bounds, sql_for, summary_rows

CATEGORIES: tuple[str, ...] = tuple(c.value for c in ErrorCategory)
TOP_ERRORS_LIMIT = 20
"""At most this many codes and messages per category."""


def check_filters(provider: str | None = None, model: str | None = None, category: str | None = None) -> None:
    """Refuse a provider, model or category the platform does not know, saying which ones it does."""
    if provider is not None and provider not in PROVIDERS:
        raise InvalidInput(f"Unknown provider {provider!r}: pick one of {', '.join(PROVIDERS)}.")
    if model is not None:
        known = KNOWN_MODELS.get(provider, ()) if provider else tuple(m for ms in KNOWN_MODELS.values() for m in ms)
        if model not in known:
            raise InvalidInput(
                f"Unknown model {model!r}{f' for {provider}' if provider else ''}: pick one of {', '.join(known)}."
            )
    if category is not None and category not in CATEGORIES:
        raise InvalidInput(f"Unknown error category {category!r}: pick one of {', '.join(CATEGORIES)}.")


def check_retention(window: TimeWindow, *, retention: timedelta, now: datetime | None = None) -> None:
    """Refuse a window that starts before the oldest kept execution, or lies wholly in the future."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    oldest = moment - retention
    if window.start < oldest:
        raise InvalidInput(
            f"Executions are kept for {retention.days} days: this range starts on {window.start:%Y-%m-%d}, "
            f"before the oldest kept day ({oldest:%Y-%m-%d}). Pick a later start."
        )
    if window.start > moment:
        raise InvalidInput(
            f"This range starts in the future ({window.start:%Y-%m-%d %H:%M} UTC): pick an earlier start."
        )


ERROR_RATE_BY_CATEGORY = (
    """
WITH buckets AS (
    SELECT generate_series(CAST(:start AS timestamptz), CAST(:end AS timestamptz) - CAST(:step AS interval),
                           CAST(:step AS interval)) AS bucket_start
),
grouped AS (
    -- One pass over the rollup's (bucket_start, error_category, provider, model) INCLUDE (executions)
    -- index: executions per bucket and category, '' being the executions without an error.
    SELECT bucket_start, error_category, sum(executions) AS n
    FROM {rollup}
    WHERE bucket_start >= :start AND bucket_start < :end"""
    + PROVIDER_MODEL_FILTER
    + """
    GROUP BY bucket_start, error_category
),
totals AS (
    SELECT bucket_start, error_category, n,
           sum(n) OVER (PARTITION BY bucket_start) AS executions,
           count(*) FILTER (WHERE error_category <> '') OVER (PARTITION BY bucket_start) AS categories
    FROM grouped
)
SELECT b.bucket_start, nullif(t.error_category, '') AS error_category,
       CAST(CASE WHEN t.error_category <> '' THEN t.n ELSE 0 END AS bigint) AS errors,
       CAST(coalesce(t.executions, 0) AS bigint) AS executions
FROM buckets AS b
LEFT JOIN totals AS t ON t.bucket_start = b.bucket_start AND (t.error_category <> '' OR t.categories = 0)
ORDER BY b.bucket_start, error_category
"""
)


# One row per hour and series of the hourly summaries, with its errors per category in two
# arrays: a month is 720 rows for the platform, expanded to (hour, category) rows by _expand_hours.
ERROR_RATE_PER_HOUR = """
SELECT bucket_start, executions, error_categories, error_counts
FROM execution_latency_hour
WHERE bucket_start >= :start AND bucket_start < :end AND {rows}
ORDER BY bucket_start
"""


def error_rate_by_category(
    conn: Connection,
    window: TimeWindow,
    *,
    grain: Grain | None = None,
    provider: str | None = None,
    model: str | None = None,
) -> pd.DataFrame:
    """Failed / all executions per time bucket and error category, from the minute rollup or the hourly summaries.

    One row per bucket and category that had errors, and one row with category ``None`` for a
    bucket without any. Columns: ``bucket_start`` (UTC), ``category``, ``errors``,
    ``executions`` (all executions of the bucket), ``rate`` (0..1, NaN without executions).
    """
    check_filters(provider, model)
    chosen, params = bounds(window, grain)
    filters = {"provider": provider, "model": model}
    if chosen is Grain.MINUTE:
        rows = conn.execute(sql_for(ERROR_RATE_BY_CATEGORY, chosen), {**params, **filters})
        frame = frame_of(rows.all(), ["bucket_start", "category", "errors", "executions"], times=["bucket_start"])
    else:
        hours = conn.execute(
            text(ERROR_RATE_PER_HOUR.format(rows=summary_rows(provider, model))), {**params, **filters}
        )
        frame = _expand_hours(hours.all(), pd.date_range(params["start"], params["end"], freq="h", inclusive="left"))
    frame["errors"] = frame["errors"].astype(np.int64)
    frame["executions"] = frame["executions"].astype(np.int64)
    frame["rate"] = frame["errors"] / frame["executions"].where(frame["executions"] > 0)
    return frame


def _expand_hours(rows: Sequence[Any], buckets: pd.DatetimeIndex) -> pd.DataFrame:
    """Turn hourly summary rows (bucket, executions, categories, counts) into the minute path's frame.

    Rows of one hour (several series, when a model name is shared by providers) are summed; an
    hour without an error, or without a row, gets one row with category None. One pass in plain
    Python: cheaper than pandas' grouping for a few thousand entries.
    """
    hours: dict[int, tuple[int, dict[str, int]]] = {}
    for start, executions, categories, counts in rows:
        second = int(start.timestamp())
        total, per_category = hours.get(second, (0, {}))
        for category, n in zip(categories, counts, strict=True):
            per_category[category] = per_category.get(category, 0) + int(n)
        hours[second] = (total + int(executions), per_category)
    at: list[int] = []
    named: list[str | None] = []
    failed: list[int] = []
    totals: list[int] = []
    for second in buckets.as_unit("s").asi8.tolist():
        total, per_category = hours.get(second, (0, {}))
        names: list[str | None] = [*sorted(per_category)] if per_category else [None]
        for category in names:
            at.append(second)
            named.append(category)
            failed.append(per_category[category] if category is not None else 0)
            totals.append(total)
    return pd.DataFrame(
        {
            "bucket_start": pd.to_datetime(np.array(at, dtype=np.int64), unit="s", utc=True),
            "category": named,
            "errors": np.array(failed, dtype=np.int64),
            "executions": np.array(totals, dtype=np.int64),
        }
    )


def total_error_rate(by_category: pd.DataFrame) -> pd.DataFrame:
    """Sum the categories of ``error_rate_by_category`` per bucket: bucket_start, errors, executions, rate."""
    grouped = by_category.groupby("bucket_start", sort=True).agg(
        errors=("errors", "sum"), executions=("executions", "max")
    )
    grouped = grouped.reset_index()
    grouped["rate"] = grouped["errors"] / grouped["executions"].where(grouped["executions"] > 0)
    return grouped


# -- top errors ---------------------------------------------------------------------------------

TOP_ERRORS_RAW = (
    """
WITH failed AS (
    SELECT error_category, coalesce(error_code, '') AS error_code, coalesce(error_message, '') AS error_message,
           count(*) AS executions, max(created_at) AS last_seen_at
    FROM prompt_executions
    WHERE error_category = ANY(:categories) AND created_at >= :start AND created_at < :end"""
    + PROVIDER_MODEL_FILTER
    + """
    GROUP BY 1, 2, 3
)"""
)

# The series rows (``summary_rows``) of the hourly errors: the platform's or a provider's '*'
# rows when no model is named, so a month reads a few rows per hour.
TOP_ERRORS_HOURLY = """
WITH failed AS (
    SELECT error_category, error_code, error_message, sum(executions) AS executions, max(last_seen_at) AS last_seen_at
    FROM execution_error_hour
    WHERE error_category = ANY(:categories) AND bucket_start >= :start AND bucket_start < :end AND {rows}
    GROUP BY 1, 2, 3
)"""

_RANKED = """,
ranked AS (
    SELECT *,
           row_number() OVER (PARTITION BY error_category ORDER BY executions DESC, error_code, error_message) AS rank,
           sum(executions) OVER (PARTITION BY error_category) AS category_errors
    FROM failed
)
SELECT error_category, error_code, error_message, CAST(executions AS bigint) AS executions,
       CAST(executions AS float8) / CAST(category_errors AS float8) AS share_of_category, last_seen_at
FROM ranked
WHERE rank <= :limit
ORDER BY category_errors DESC, error_category, rank
"""


def top_errors(
    conn: Connection,
    window: TimeWindow,
    *,
    category: str | None = None,
    provider: str | None = None,
    model: str | None = None,
    limit: int = 5,
    grain: Grain | None = None,
) -> pd.DataFrame:
    """Return the most frequent error codes and messages per category in the window.

    Minute grain: the failed executions of the (whole-minute) window, through the
    ``(error_category, created_at)`` index. Hour grain: ``execution_error_hour``. Columns:
    ``category``, ``error_code``, ``error_message``, ``executions``, ``share_of_category``
    (0..1), ``last_seen_at``; at most ``limit`` rows (at most 20) per category.
    """
    check_filters(provider, model, category)
    if not 1 <= limit <= TOP_ERRORS_LIMIT:
        raise InvalidInput(f"Show between 1 and {TOP_ERRORS_LIMIT} errors per category, not {limit}.")
    chosen, params = bounds(window, grain)
    if chosen is Grain.MINUTE:
        sql = TOP_ERRORS_RAW + _RANKED
    else:
        sql = TOP_ERRORS_HOURLY.format(rows=summary_rows(provider, model)) + _RANKED
    categories = [category] if category else list(CATEGORIES)
    rows = conn.execute(
        text(sql), {**params, "categories": categories, "provider": provider, "model": model, "limit": limit}
    )
    frame = frame_of(
        rows.all(),
        ["category", "error_code", "error_message", "executions", "share_of_category", "last_seen_at"],
        times=["last_seen_at"],
    )
    frame["executions"] = frame["executions"].astype(np.int64)
    frame["share_of_category"] = frame["share_of_category"].astype(float)
    return frame


# -- new and escalating categories --------------------------------------------------------------

CATEGORY_TOTALS = """
SELECT error_category,
       CAST(coalesce(sum(executions) FILTER (WHERE bucket_start >= :start), 0) AS bigint) AS errors,
       CAST(coalesce(sum(executions) FILTER (WHERE bucket_start < :start), 0) AS bigint) AS previous_errors
FROM {rollup}
WHERE bucket_start >= :previous_start AND bucket_start < :end"""

# The hourly summaries' version: '' holds the executions without an error, as in the rollups.
CATEGORY_TOTALS_PER_HOUR = """
WITH picked AS (
    SELECT bucket_start >= :start AS current, executions - errors AS clean, error_categories, error_counts
    FROM execution_latency_hour
    WHERE bucket_start >= :previous_start AND bucket_start < :end AND {rows}
)
SELECT '' AS error_category,
       CAST(coalesce(sum(clean) FILTER (WHERE current), 0) AS bigint) AS errors,
       CAST(coalesce(sum(clean) FILTER (WHERE NOT current), 0) AS bigint) AS previous_errors
FROM picked
UNION ALL
SELECT c.category,
       CAST(coalesce(sum(c.n) FILTER (WHERE current), 0) AS bigint),
       CAST(coalesce(sum(c.n) FILTER (WHERE NOT current), 0) AS bigint)
FROM picked, unnest(error_categories, error_counts) AS c(category, n)
GROUP BY c.category
"""

ESCALATION_FACTOR = 1.5
MIN_ERRORS = 10


def category_changes(
    conn: Connection,
    window: TimeWindow,
    *,
    grain: Grain | None = None,
    provider: str | None = None,
    model: str | None = None,
) -> pd.DataFrame:
    """Each category's errors and rate in the window against the previous window of the same length.

    ``trend`` is ``new`` (no error of it before, at least ``MIN_ERRORS`` now), ``escalating``
    (its rate grew at least 1.5 times, with at least ``MIN_ERRORS`` errors now), ``falling``
    (its rate fell by a third or more), ``gone`` (none now) or ``steady``. Columns: ``category``,
    ``errors``, ``previous_errors``, ``rate``, ``previous_rate``, ``change`` (rate ratio, NaN
    when there was none before), ``trend``; sorted with new and escalating first.
    """
    check_filters(provider, model)
    chosen, params = bounds(window, grain)
    params["previous_start"] = params["start"] - (params["end"] - params["start"])
    filters = {"provider": provider, "model": model}
    # One pass over the window and the one before: every category's errors now and before, '' being the rest.
    if chosen is Grain.MINUTE:
        sql = sql_for(CATEGORY_TOTALS + PROVIDER_MODEL_FILTER + "\nGROUP BY error_category", chosen)
    else:
        sql = text(CATEGORY_TOTALS_PER_HOUR.format(rows=summary_rows(provider, model)))
    rows = conn.execute(sql, {**params, **filters}).all()
    executions = sum(int(r.errors) for r in rows)
    previous_executions = sum(int(r.previous_errors) for r in rows)
    totals = [tuple(r) for r in rows if r.error_category != ""]
    frame = pd.DataFrame(totals, columns=["category", "errors", "previous_errors"]).fillna(0)
    frame["errors"] = frame["errors"].astype(np.int64)
    frame["previous_errors"] = frame["previous_errors"].astype(np.int64)
    frame["rate"] = frame["errors"] / executions if executions else np.nan
    frame["previous_rate"] = frame["previous_errors"] / previous_executions if previous_executions else np.nan
    frame["change"] = frame["rate"] / frame["previous_rate"].where(frame["previous_rate"] > 0)
    frame["trend"] = [_trend(row) for row in frame.itertuples()]
    order = {"new": 0, "escalating": 1, "steady": 2, "falling": 3, "gone": 4}
    frame["_order"] = frame["trend"].map(order)
    return (
        frame.sort_values(["_order", "errors"], ascending=[True, False]).drop(columns="_order").reset_index(drop=True)
    )


def _trend(row: Any) -> str:
    if row.errors == 0:
        return "gone"
    if row.previous_errors == 0:
        return "new" if row.errors >= MIN_ERRORS else "steady"
    if row.errors >= MIN_ERRORS and row.change >= ESCALATION_FACTOR:
        return "escalating"
    if row.change <= 2 / 3:
        return "falling"
    return "steady"
