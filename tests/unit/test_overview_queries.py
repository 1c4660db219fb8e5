"""The Overview queries' pure parts: grain choice, whole-bucket windows, midpoints, headline figures."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from core.domain.histogram import MAX_BUCKET, bucket_midpoint
from core.domain.models import TimeWindow
from queries import overview
from queries.grain import PROVIDER_MODEL_FILTER, Grain, bounds, grain_for, sql_for, summary_rows, whole_buckets
from queries.overview import ExecutionTotals

NOON = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def window(start: datetime, end: datetime) -> TimeWindow:
    return TimeWindow(start=start, end=end)


@pytest.mark.parametrize(
    ("span", "grain"),
    [
        (timedelta(minutes=5), Grain.MINUTE),
        (timedelta(hours=6), Grain.MINUTE),
        (timedelta(hours=6, seconds=1), Grain.HOUR),
        (timedelta(days=30), Grain.HOUR),
    ],
)
def test_windows_up_to_six_hours_read_the_minute_rollup(span: timedelta, grain: Grain) -> None:
    assert grain_for(TimeWindow.last(span, now=NOON)) is grain


def test_each_grain_names_its_rollup_table_and_bucket_length() -> None:
    assert (Grain.MINUTE.table, Grain.MINUTE.step) == ("execution_rollup_minute", timedelta(minutes=1))
    assert (Grain.HOUR.table, Grain.HOUR.step) == ("execution_rollup_hour", timedelta(hours=1))


def test_a_window_is_widened_to_whole_buckets() -> None:
    ragged = window(datetime(2026, 11, 20, 10, 37, 12, tzinfo=UTC), datetime(2026, 11, 21, 10, 37, 12, tzinfo=UTC))

    assert whole_buckets(ragged, Grain.HOUR) == window(
        datetime(2026, 11, 20, 10, tzinfo=UTC), datetime(2026, 11, 21, 11, tzinfo=UTC)
    )
    assert whole_buckets(ragged, Grain.MINUTE) == window(
        datetime(2026, 11, 20, 10, 37, tzinfo=UTC), datetime(2026, 11, 21, 10, 38, tzinfo=UTC)
    )


def test_a_window_on_bucket_edges_is_kept_as_it_is() -> None:
    aligned = window(NOON - timedelta(hours=3), NOON)

    assert whole_buckets(aligned, Grain.HOUR) == aligned
    assert whole_buckets(aligned, Grain.MINUTE) == aligned


def test_whole_buckets_are_counted_in_utc() -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    local = window(datetime(2026, 11, 20, 17, 45, tzinfo=india), datetime(2026, 11, 20, 19, 45, tzinfo=india))

    widened = whole_buckets(local, Grain.HOUR)

    assert widened == window(datetime(2026, 11, 20, 12, tzinfo=UTC), datetime(2026, 11, 20, 15, tzinfo=UTC))
    assert widened.start.tzinfo is UTC


def test_bounds_give_the_grain_and_the_whole_bucket_parameters_every_query_binds() -> None:
    ragged = window(datetime(2026, 11, 20, 10, 37, 12, tzinfo=UTC), datetime(2026, 11, 20, 11, 7, 12, tzinfo=UTC))

    chosen, params = bounds(ragged)
    assert chosen is Grain.MINUTE
    assert params == {
        "start": datetime(2026, 11, 20, 10, 37, tzinfo=UTC),
        "end": datetime(2026, 11, 20, 11, 8, tzinfo=UTC),
        "step": timedelta(minutes=1),
    }
    forced, hourly = bounds(ragged, Grain.HOUR)
    assert forced is Grain.HOUR
    assert (hourly["start"], hourly["end"], hourly["step"]) == (
        datetime(2026, 11, 20, 10, tzinfo=UTC),
        datetime(2026, 11, 20, 12, tzinfo=UTC),
        timedelta(hours=1),
    )


def test_a_query_template_names_the_grains_rollup_and_the_filter_binds_every_value() -> None:
    template = "SELECT count(*) FROM {rollup} WHERE bucket_start >= :start{extra}"

    assert sql_for(template, Grain.HOUR, extra="").text == (
        "SELECT count(*) FROM execution_rollup_hour WHERE bucket_start >= :start"
    )
    assert sql_for(template, Grain.MINUTE, extra=PROVIDER_MODEL_FILTER).text.startswith(
        "SELECT count(*) FROM execution_rollup_minute WHERE"
    )
    assert ":provider" in PROVIDER_MODEL_FILTER and ":model" in PROVIDER_MODEL_FILTER
    for provider, model in ((None, None), ("openai", None), ("openai", "gpt-4o"), (None, "gpt-4o")):
        rows = summary_rows(provider, model)
        assert "openai" not in rows and "gpt-4o" not in rows  # values travel as bound parameters only
    assert summary_rows(None, None) == "provider = '*' AND model = '*'"


def test_bucket_midpoints_match_the_histogram_module() -> None:
    indexes = [0, 1, 2, 150, MAX_BUCKET]

    assert overview.bucket_midpoints(indexes).tolist() == [bucket_midpoint(i) for i in indexes]


def test_an_empty_bucket_has_no_midpoint() -> None:
    assert math.isnan(overview.bucket_midpoints([-1])[0])


@pytest.mark.parametrize("q", [95, 0.75])
def test_only_the_kept_latency_quantiles_are_offered(q: float) -> None:
    with pytest.raises(ValueError, match=r"one of 0\.5, 0\.9, 0\.95, 0\.99"):
        overview.latency_quantile_over_time(None, TimeWindow.last(timedelta(hours=1)), q=q)  # type: ignore[arg-type]


def totals(executions: int, errors: int = 0, latency_count: int = 0, latency_sum_ms: int = 0) -> ExecutionTotals:
    return ExecutionTotals(
        window=window(NOON - timedelta(hours=1), NOON),
        grain=Grain.MINUTE,
        executions=executions,
        errors=errors,
        latency_count=latency_count,
        latency_sum_ms=latency_sum_ms,
        p95_latency_ms=None,
        cost_usd=Decimal("12.50"),
    )


def test_headline_rates_divide_by_the_executions() -> None:
    figures = totals(executions=200, errors=5, latency_count=190, latency_sum_ms=190_000)

    assert figures.error_rate == 0.025
    assert figures.mean_latency_ms == 1000
    assert figures.cost_per_execution_usd == Decimal("0.0625")


def test_a_window_without_executions_has_no_rates() -> None:
    figures = totals(executions=0)

    assert (figures.error_rate, figures.mean_latency_ms, figures.cost_per_execution_usd) == (None, None, None)
