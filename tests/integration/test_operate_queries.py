"""The Errors and Latency queries against a seeded database, checked against the raw table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from core.bootstrap import Services
from core.domain.exceptions import InvalidInput
from core.domain.histogram import RELATIVE_ERROR_BOUND, quantiles
from core.domain.models import TimeWindow
from core.executions.spikes import detect_spikes
from queries import errors, latency
from queries.grain import Grain, grain_for
from queries.latency import Metric, SeriesBy

QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}


def _end(services: Services) -> datetime:
    with services.db.read() as conn:
        newest = conn.execute(text("SELECT max(created_at) FROM prompt_executions")).scalar_one()
    return newest.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


_RAW_FILTERS = (
    " AND (CAST(:provider AS text) IS NULL OR provider = :provider)"
    " AND (CAST(:model AS text) IS NULL OR model = :model)"
)


@pytest.mark.parametrize(
    ("provider", "model"), [(None, None), ("openai", None), (None, "claude-sonnet-4"), ("openai", "gpt-4o-mini")]
)
def test_error_rate_by_category_equals_the_raw_counts(
    operate_services: Services, provider: str | None, model: str | None
) -> None:
    end = _end(operate_services)
    failed_seen = 0
    for span in (timedelta(hours=3), timedelta(days=2)):
        window = TimeWindow(start=end - span, end=end)
        params = {"s": window.start, "e": window.end, "provider": provider, "model": model}
        with operate_services.db.read() as conn:
            frame = errors.error_rate_by_category(conn, window, provider=provider, model=model)
            raw = conn.execute(
                text(
                    "SELECT error_category, count(*) FROM prompt_executions "
                    "WHERE created_at >= :s AND created_at < :e AND error_category IS NOT NULL"
                    + _RAW_FILTERS
                    + " GROUP BY 1"
                ),
                params,
            ).all()
            total = conn.execute(
                text(
                    "SELECT count(*) FROM prompt_executions WHERE created_at >= :s AND created_at < :e" + _RAW_FILTERS
                ),
                params,
            ).scalar_one()
        assert total > 0, "the filter must select executions for the check to mean anything"
        failed_seen += sum(n for _, n in raw)
        by_category = frame.dropna(subset=["category"]).groupby("category")["errors"].sum().to_dict()
        assert by_category == {category: count for category, count in raw}
        totals = errors.total_error_rate(frame)
        assert totals["executions"].sum() == total
        assert len(totals) == span / (timedelta(minutes=1) if span <= timedelta(hours=6) else timedelta(hours=1))
    assert failed_seen > 0, "no failed execution matched: the counts were never compared"


@pytest.mark.parametrize(("provider", "model"), [(None, None), ("anthropic", None), ("openai", "gpt-4o")])
def test_top_errors_short_and_long_ranges_agree_with_the_raw_table(
    operate_services: Services, provider: str | None, model: str | None
) -> None:
    end = _end(operate_services)
    for span, grain in ((timedelta(hours=4), Grain.MINUTE), (timedelta(days=2), Grain.HOUR)):
        window = TimeWindow(start=end - span, end=end)
        with operate_services.db.read() as conn:
            top = errors.top_errors(conn, window, limit=20, provider=provider, model=model)
            raw = conn.execute(
                text(
                    "SELECT error_category, coalesce(error_code, ''), coalesce(error_message, ''), count(*) "
                    "FROM prompt_executions WHERE created_at >= :s AND created_at < :e "
                    "AND error_category IS NOT NULL" + _RAW_FILTERS + " GROUP BY 1, 2, 3"
                ),
                {"s": window.start, "e": window.end, "provider": provider, "model": model},
            ).all()
        assert raw, "no failed execution matched: the check would compare nothing"
        assert grain_for(window) is grain
        expected = {(c, code, msg): n for c, code, msg, n in raw}
        got = {(r.category, r.error_code, r.error_message): r.executions for r in top.itertuples()}
        assert got == expected
        shares = top.groupby("category")["share_of_category"].sum()
        assert np.allclose(shares.to_numpy(), 1.0)


@pytest.mark.parametrize(
    ("span", "provider"), [(timedelta(hours=12), None), (timedelta(hours=5), None), (timedelta(hours=12), "anthropic")]
)
def test_category_changes_compare_with_the_previous_window(
    operate_services: Services, span: timedelta, provider: str | None
) -> None:
    end = _end(operate_services)
    window = TimeWindow(start=end - span, end=end)
    count = (
        "SELECT error_category, count(*) FROM prompt_executions WHERE created_at >= :s AND created_at < :e"
        + _RAW_FILTERS
        + " GROUP BY 1"
    )
    with operate_services.db.read() as conn:
        changes = errors.category_changes(conn, window, provider=provider)
        current = dict(
            conn.execute(text(count), {"s": window.start, "e": end, "provider": provider, "model": None}).all()
        )
        previous = dict(
            conn.execute(
                text(count), {"s": window.start - span, "e": window.start, "provider": provider, "model": None}
            ).all()
        )
    failed = {c: n for c, n in current.items() if c is not None}
    failed_before = {c: n for c, n in previous.items() if c is not None}
    assert failed and failed_before
    assert dict(zip(changes["category"], changes["errors"], strict=True)) == {
        **{c: 0 for c in changes["category"]},
        **failed,
    }
    assert dict(zip(changes["category"], changes["previous_errors"], strict=True)) == {
        **{c: 0 for c in changes["category"]},
        **failed_before,
    }
    # The rates' denominators are every execution of each window, failed or not.
    rates = dict(zip(changes["category"], changes["rate"], strict=True))
    for category, n in failed.items():
        assert rates[category] == pytest.approx(n / sum(current.values()))
    assert set(changes["trend"]) <= {"new", "escalating", "steady", "falling", "gone"}


def test_spikes_mark_where_the_rate_leaves_its_baseline() -> None:
    times = pd.date_range("2026-11-26T00:00Z", periods=60, freq="min")
    rate = np.full(60, 0.02)
    rate[40:45] = 0.30
    totals = pd.DataFrame({"bucket_start": times, "rate": rate, "executions": 100})
    spikes = detect_spikes(totals)
    assert list(spikes["bucket_start"]) == [times[40]]
    assert spikes["baseline"].iloc[0] == pytest.approx(0.02)


def test_a_few_errors_at_low_volume_are_chance_not_a_spike() -> None:
    # 23 executions a minute at a 4 % baseline: 3 errors in a minute (13 %) happen by chance.
    times = pd.date_range("2026-11-26T00:00Z", periods=60, freq="min")
    errors_per_minute = np.ones(60)
    errors_per_minute[[20, 35]] = 3
    errors_per_minute[50] = 7  # about 1 in 100,000 by chance at that baseline: an incident
    totals = pd.DataFrame({"bucket_start": times, "rate": errors_per_minute / 23, "executions": 23})
    spikes = detect_spikes(totals)
    assert list(spikes["bucket_start"]) == [times[50]]


def _exact(conn, window: TimeWindow, metric: str, step: str, by_model: bool) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    series = "provider || '/' || model" if by_model else "'all'"
    column = f"{metric}_ms"
    picks = ", ".join(
        f"percentile_cont({q}) WITHIN GROUP (ORDER BY {column}) AS {name}, "
        f"(array_agg({column} ORDER BY {column}))[floor({q} * (count({column}) - 1))::int + 1] AS {name}_rank, "
        f"(array_agg({column} ORDER BY {column}))[ceil({q} * (count({column}) - 1))::int + 1] AS {name}_next"
        for name, q in QUANTILES.items()
    )
    sql = (
        f"SELECT date_trunc('{step}', created_at) AS bucket_start, {series} AS series, count({column}) AS n, {picks} "
        f"FROM prompt_executions WHERE created_at >= :s AND created_at < :e AND {column} IS NOT NULL "
        "GROUP BY 1, 2 ORDER BY 1, 2"
    )
    frame = pd.DataFrame(conn.execute(text(sql), {"s": window.start, "e": window.end}).mappings().all())
    frame["bucket_start"] = pd.to_datetime(frame["bucket_start"], utc=True)
    return frame


@pytest.mark.parametrize("metric", [Metric.LATENCY, Metric.TTFB])
@pytest.mark.parametrize(("span", "step"), [(timedelta(hours=5), "minute"), (timedelta(days=2), "hour")])
@pytest.mark.parametrize("by", [SeriesBy.ALL, SeriesBy.MODEL])
def test_percentiles_are_within_the_stated_bound_of_exact_percentile_cont(
    operate_services: Services, metric: Metric, span: timedelta, step: str, by: SeriesBy
) -> None:
    """Each histogram percentile is within 1.98 % of the value at percentile_cont's rank q * (n - 1).

    percentile_cont interpolates from that value towards the next one, so against it the error is
    at most 1.98 % plus the relative gap between those two neighbouring values.
    """
    end = _end(operate_services)
    window = TimeWindow(start=end - span, end=end)
    with operate_services.db.read() as conn:
        estimated = latency.latency_percentiles(conn, window, metric=metric, by=by)
        exact = _exact(conn, window, metric.value, step, by is SeriesBy.MODEL)
    merged = estimated.merge(exact, on=["bucket_start", "series"], suffixes=("", "_exact"))
    assert len(merged) == len(exact) == len(estimated) > 0
    assert (merged["count"] == merged["n"]).all()
    for name in QUANTILES:
        at_rank = (merged[name] / merged[f"{name}_rank"] - 1).abs()
        assert at_rank.max() <= RELATIVE_ERROR_BOUND + 1e-9, name
        cont = merged[f"{name}_exact"].astype(float)
        gap = (merged[f"{name}_next"] / merged[f"{name}_rank"] - 1).abs()
        assert ((merged[name] / cont - 1).abs() <= RELATIVE_ERROR_BOUND + gap + 1e-9).all(), name


@pytest.mark.parametrize("metric", [Metric.LATENCY, Metric.TTFB])
def test_window_percentiles_are_within_two_percent_of_percentile_cont(
    operate_services: Services, metric: Metric
) -> None:
    """Over a whole window (thousands of executions) the bound holds against percentile_cont itself."""
    end = _end(operate_services)
    window = TimeWindow(start=end - timedelta(days=2), end=end)
    column = f"{metric.value}_ms"
    with operate_services.db.read() as conn:
        dist = latency.latency_distribution(conn, window, metric=metric)
        exact = conn.execute(
            text(
                ", ".join(f"percentile_cont({q}) WITHIN GROUP (ORDER BY {column})" for q in QUANTILES.values()).join(
                    ["SELECT ", " FROM prompt_executions WHERE created_at >= :s AND created_at < :e"]
                )
            ),
            {"s": window.start, "e": window.end},
        ).one()
    estimated = quantiles(list(dist["bucket"]), list(dist["executions"]), QUANTILES.values())
    for got, want in zip(estimated, exact, strict=True):
        assert got is not None
        assert abs(got / want - 1) <= 0.02


def test_distribution_counts_every_measured_execution(operate_services: Services) -> None:
    end = _end(operate_services)
    window = TimeWindow(start=end - timedelta(days=2), end=end)
    with operate_services.db.read() as conn:
        dist = latency.latency_distribution(conn, window, provider="openai")
        short = latency.latency_distribution(conn, TimeWindow(start=end - timedelta(hours=2), end=end))
        counts = conn.execute(
            text(
                "SELECT count(latency_ms) FILTER (WHERE provider = 'openai' AND created_at >= :s), "
                "count(latency_ms) FILTER (WHERE created_at >= :e - interval '2 hours') "
                "FROM prompt_executions WHERE created_at >= :s AND created_at < :e"
            ),
            {"s": window.start, "e": window.end},
        ).one()
    assert dist["executions"].sum() == counts[0]
    assert short["executions"].sum() == counts[1]
    assert (dist["low_ms"] < dist["high_ms"]).all()


def test_slowest_executions_are_the_slowest_of_the_exact_window(operate_services: Services) -> None:
    end = _end(operate_services)
    window = TimeWindow(start=end - timedelta(hours=30), end=end)
    with operate_services.db.read() as conn:
        slowest = latency.slowest_executions(conn, window, limit=10, provider="anthropic")
        expected = conn.execute(
            text(
                "SELECT latency_ms FROM prompt_executions WHERE created_at >= :s AND created_at < :e "
                "AND provider = 'anthropic' AND latency_ms IS NOT NULL ORDER BY latency_ms DESC LIMIT 10"
            ),
            {"s": window.start, "e": window.end},
        ).scalars()
        plan = "\n".join(
            conn.execute(
                text("EXPLAIN " + latency.SLOWEST),
                {"start": window.start, "end": window.end, "provider": None, "model": None, "limit": 10},
            ).scalars()
        )
    assert list(slowest["latency_ms"]) == list(expected)
    assert set(slowest["provider"]) == {"anthropic"}
    assert "Seq Scan" not in plan


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c, w: errors.error_rate_by_category(c, w, provider="acme"), "Unknown provider 'acme'"),
        (lambda c, w: latency.latency_percentiles(c, w, model="gpt-9"), "Unknown model 'gpt-9'"),
        (lambda c, w: errors.top_errors(c, w, category="sadness"), "Unknown error category"),
        (lambda c, w: latency.slowest_executions(c, w, limit=5000), "between 1 and 100"),
    ],
)
def test_bad_filters_are_refused_with_a_clear_message(operate_services: Services, call, message: str) -> None:  # type: ignore[no-untyped-def]
    window = TimeWindow.last(timedelta(hours=1))
    with operate_services.db.read() as conn, pytest.raises(InvalidInput, match=message):
        call(conn, window)


def test_a_range_beyond_retention_is_refused() -> None:
    now = datetime(2026, 11, 26, tzinfo=UTC)
    old = TimeWindow(start=now - timedelta(days=100), end=now - timedelta(days=99))
    with pytest.raises(InvalidInput, match="kept for 90 days"):
        errors.check_retention(old, retention=timedelta(days=90), now=now)
    errors.check_retention(TimeWindow.last(timedelta(days=30), now=now), retention=timedelta(days=90), now=now)
