"""The Overview queries against the seeded database: what the rollups say matches the raw executions."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from sqlalchemy import Connection, text

from core.bootstrap import Services
from core.domain.histogram import RELATIVE_ERROR_BOUND, quantiles
from core.domain.models import TimeWindow
from queries import overview
from queries.grain import Grain, whole_buckets

RAW_TOTALS = """
SELECT count(*) AS executions,
       count(*) FILTER (WHERE error_category IS NOT NULL) AS errors,
       count(*) FILTER (WHERE status IN ('failed', 'timed_out')) AS failed,
       count(latency_ms) AS latency_count,
       coalesce(sum(latency_ms), 0) AS latency_sum_ms,
       coalesce(sum(cost_usd), 0) AS cost_usd,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95
FROM prompt_executions
WHERE created_at >= :start AND created_at < :end
"""

RAW_PER_BUCKET = """
SELECT date_bin(CAST(:step AS interval), created_at, timestamptz '2000-01-01 00:00+00') AS bucket_start,
       count(*) AS executions,
       count(*) FILTER (WHERE error_category IS NOT NULL) AS errors
FROM prompt_executions
WHERE created_at >= :start AND created_at < :end
GROUP BY 1
ORDER BY 1
"""

RAW_LATENCIES_PER_BUCKET = """
SELECT date_bin(CAST(:step AS interval), created_at, timestamptz '2000-01-01 00:00+00') AS bucket_start,
       array_agg(latency_ms ORDER BY latency_ms) AS latencies
FROM prompt_executions
WHERE created_at >= :start AND created_at < :end AND latency_ms IS NOT NULL
GROUP BY 1
"""

ROLLUP_HISTOGRAMS = """
SELECT bucket_start, array_agg(bucket ORDER BY bucket) AS buckets, array_agg(n ORDER BY bucket) AS counts
FROM (
    SELECT r.bucket_start, h.bucket, sum(h.n) AS n
    FROM {table} AS r, unnest(r.latency_buckets, r.latency_counts) AS h(bucket, n)
    WHERE r.bucket_start >= :start AND r.bucket_start < :end
    GROUP BY 1, 2
) AS merged
GROUP BY bucket_start
"""


@pytest.fixture()
def conn(seeded_services: Services) -> Iterator[Connection]:
    with seeded_services.db.read() as connection:
        yield connection


@pytest.fixture()
def seed_end(seeded_services: Services) -> datetime:
    """Return the end of the seeded traffic (the minute after the newest execution)."""
    with seeded_services.db.read() as own:  # its own transaction: tests count the others' table reads
        newest = own.execute(text("SELECT max(created_at) FROM prompt_executions")).scalar_one()
    return newest.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)


def _raw_totals(conn: Connection, window: TimeWindow) -> dict[str, object]:
    return dict(conn.execute(text(RAW_TOTALS), {"start": window.start, "end": window.end}).one()._mapping)


@pytest.mark.parametrize(
    ("span", "grain"),
    [(timedelta(hours=3), Grain.MINUTE), (timedelta(days=2), Grain.HOUR), (timedelta(days=30), Grain.HOUR)],
)
def test_totals_match_the_raw_executions(conn: Connection, seed_end: datetime, span: timedelta, grain: Grain) -> None:
    window = TimeWindow(start=seed_end - span, end=seed_end)

    totals = overview.execution_totals(conn, window)

    assert totals.grain is grain
    assert totals.window == whole_buckets(window, grain)
    raw = _raw_totals(conn, totals.window)
    assert raw["executions"] > 0
    assert totals.executions == raw["executions"]
    assert totals.errors == raw["errors"] == raw["failed"]
    assert totals.latency_count == raw["latency_count"]
    assert totals.latency_sum_ms == raw["latency_sum_ms"]
    assert totals.cost_usd == Decimal(raw["cost_usd"])
    assert totals.error_rate == pytest.approx(raw["errors"] / raw["executions"])


def test_p95_from_histograms_is_within_two_percent_of_the_exact_percentile(
    conn: Connection, seed_end: datetime
) -> None:
    window = TimeWindow(start=seed_end - timedelta(days=14), end=seed_end)

    totals = overview.execution_totals(conn, window)

    raw = _raw_totals(conn, totals.window)
    assert totals.latency_count > 30_000
    assert totals.p95_latency_ms is not None
    assert totals.p95_latency_ms == pytest.approx(raw["p95"], rel=0.02)


@pytest.mark.parametrize(("span", "grain"), [(timedelta(hours=2), Grain.MINUTE), (timedelta(days=3), Grain.HOUR)])
def test_executions_and_errors_per_bucket_match_the_raw_executions(
    conn: Connection, seed_end: datetime, span: timedelta, grain: Grain
) -> None:
    window = TimeWindow(start=seed_end - span, end=seed_end)

    frame = overview.executions_over_time(conn, window)

    span_window = whole_buckets(window, grain)
    expected_buckets = int(span_window.span / grain.step)
    assert len(frame) == expected_buckets
    assert frame["bucket_start"].is_monotonic_increasing
    assert frame["bucket_start"].iloc[0] == span_window.start
    params = {"start": span_window.start, "end": span_window.end, "step": grain.step}
    raw = {row.bucket_start: row for row in conn.execute(text(RAW_PER_BUCKET), params)}
    now = datetime.now(UTC)
    for point in frame.itertuples():
        expected = raw.get(point.bucket_start.to_pydatetime())
        executions = expected.executions if expected else 0
        errors = expected.errors if expected else 0
        assert (point.executions, point.errors) == (executions, errors), point.bucket_start
        if executions:
            assert point.error_rate == pytest.approx(errors / executions)
        else:
            assert math.isnan(point.error_rate)
        if point.bucket_start + grain.step <= now:
            minutes = grain.step / timedelta(minutes=1)
            assert point.executions_per_minute == pytest.approx(executions / minutes)
    assert frame["executions"].sum() == sum(row.executions for row in raw.values())


def test_a_bucket_in_progress_is_divided_by_the_minutes_it_has_lasted(conn: Connection) -> None:
    now = datetime.now(UTC)
    window = TimeWindow(start=now - timedelta(hours=12), end=now)

    frame = overview.executions_over_time(conn, window)

    newest = frame.iloc[-1]
    assert newest["bucket_start"] <= now < newest["bucket_start"] + timedelta(hours=1)
    elapsed_minutes = max(1.0, (now - newest["bucket_start"]) / timedelta(minutes=1))
    assert newest["executions_per_minute"] == pytest.approx(newest["executions"] / elapsed_minutes, rel=0.05)


@pytest.mark.parametrize(("span", "grain"), [(timedelta(hours=4), Grain.MINUTE), (timedelta(days=4), Grain.HOUR)])
def test_p95_per_bucket_follows_the_histogram_rule_and_the_raw_values(
    conn: Connection, seed_end: datetime, span: timedelta, grain: Grain
) -> None:
    window = TimeWindow(start=seed_end - span, end=seed_end)

    frame = overview.p95_latency_over_time(conn, window)

    span_window = whole_buckets(window, grain)
    params = {"start": span_window.start, "end": span_window.end, "step": grain.step}
    histograms = {
        row.bucket_start: row for row in conn.execute(text(ROLLUP_HISTOGRAMS.format(table=grain.table)), params)
    }
    latencies = {row.bucket_start: row.latencies for row in conn.execute(text(RAW_LATENCIES_PER_BUCKET), params)}
    assert len(frame) == int(span_window.span / grain.step)
    checked = 0
    for point in frame.itertuples():
        moment = point.bucket_start.to_pydatetime()
        values = latencies.get(moment, [])
        assert point.latency_count == len(values)
        if not values:
            assert math.isnan(point.latency_ms)
            continue
        histogram = histograms[moment]
        assert point.latency_ms == pytest.approx(quantiles(histogram.buckets, histogram.counts, [0.95])[0], rel=1e-9)
        # The histogram reports the bucket of the value at the percentile_cont rank (rounded down).
        ranked = float(np.sort(np.asarray(values))[math.floor(0.95 * (len(values) - 1))])
        assert abs(point.latency_ms - ranked) <= ranked * RELATIVE_ERROR_BOUND + 1e-9
        checked += 1
    assert checked > 0


def test_an_empty_range_gives_zero_executions_and_no_rates(conn: Connection) -> None:
    window = TimeWindow(start=datetime(2020, 1, 1, tzinfo=UTC), end=datetime(2020, 1, 2, tzinfo=UTC))

    totals = overview.execution_totals(conn, window)
    series = overview.executions_over_time(conn, window)
    latency = overview.p95_latency_over_time(conn, window)

    assert (totals.executions, totals.errors, totals.error_rate, totals.p95_latency_ms) == (0, 0, None, None)
    assert totals.cost_usd == 0
    assert len(series) == len(latency) == 24
    assert series["executions"].sum() == 0
    assert series["error_rate"].isna().all()
    assert latency["latency_ms"].isna().all()


def test_the_overview_reads_only_the_rollups(conn: Connection, seed_end: datetime) -> None:
    for span in (timedelta(hours=1), timedelta(days=7)):
        window = TimeWindow(start=seed_end - span, end=seed_end)
        overview.execution_totals(conn, window)
        overview.executions_over_time(conn, window)
        overview.p95_latency_over_time(conn, window)

    scans = conn.execute(
        text(
            """
            SELECT relname, seq_scan + coalesce(idx_scan, 0) AS scans
            FROM pg_stat_xact_user_tables
            WHERE relname LIKE 'prompt_executions%' OR relname LIKE 'execution_%'
            """
        )
    ).all()
    read = {row.relname for row in scans if row.scans > 0}
    assert read == {"execution_rollup_minute", "execution_latency_hour"}
