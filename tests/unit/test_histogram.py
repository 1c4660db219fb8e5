"""Latency histograms: bucket mapping (Python and SQL agree) and quantile estimates."""

from __future__ import annotations

import math

import numpy as np
import psycopg
import pytest

from core.domain.histogram import (
    GROWTH,
    MAX_BUCKET,
    RELATIVE_ERROR_BOUND,
    bucket_bounds,
    bucket_midpoint,
    bucket_of,
    bucket_sql,
    quantiles,
)


def _histogram(values: np.ndarray) -> tuple[list[int], list[int]]:
    buckets, counts = np.unique(bucket_of(values), return_counts=True)
    return buckets.tolist(), counts.tolist()


def test_small_values_go_to_bucket_zero() -> None:
    assert bucket_of([0, 0.2, 0.999, -3]).tolist() == [0, 0, 0, 0]
    assert bucket_of([1]).tolist() == [1]


def test_values_fall_inside_their_bucket_bounds() -> None:
    values = np.random.default_rng(3).lognormal(mean=5.0, sigma=2.0, size=20_000)
    values = values[values < GROWTH ** (MAX_BUCKET - 1)]
    for value, index in zip(values, bucket_of(values), strict=True):
        low, high = bucket_bounds(int(index))
        assert low <= value < high


def test_huge_values_are_capped_at_the_last_bucket() -> None:
    assert bucket_of([GROWTH**MAX_BUCKET * 10, 1e12]).tolist() == [MAX_BUCKET, MAX_BUCKET]


def test_buckets_are_at_most_four_percent_wide_and_midpoints_within_the_bound() -> None:
    for index in range(1, MAX_BUCKET):
        low, high = bucket_bounds(index)
        assert high / low == pytest.approx(GROWTH)
        mid = bucket_midpoint(index)
        assert low <= mid < high
        for value in (low, high):
            assert abs(mid - value) / value <= RELATIVE_ERROR_BOUND + 1e-12
    assert pytest.approx(0.0198, abs=1e-4) == RELATIVE_ERROR_BOUND


def test_bucket_of_matches_bucket_sql_in_postgresql(servers: tuple[str, str]) -> None:
    """The rollups bucket in SQL and the readers in Python: both must agree on every value."""
    rng = np.random.default_rng(11)
    powers = GROWTH ** np.arange(0, MAX_BUCKET + 20)
    values = np.concatenate(
        [
            np.arange(0, 100_000, dtype=np.float64),  # every integer latency up to 100 s
            rng.integers(100_000, 50_000_000, size=20_000).astype(np.float64),
            rng.lognormal(mean=5.0, sigma=2.5, size=20_000),
            powers,  # exact bucket edges and the floats either side of them
            np.nextafter(powers, 0),
            np.nextafter(powers, np.inf),
            np.array([-10.0, 0.0, 0.5, 0.999999, 1.0]),
        ]
    )
    url = servers[0].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        row = conn.execute(
            f"SELECT array_agg({bucket_sql('v')} ORDER BY i) FROM unnest(%s::float8[]) WITH ORDINALITY AS t(v, i)",
            (values.tolist(),),
        ).fetchone()
        ints = conn.execute(
            f"SELECT array_agg({bucket_sql('v')} ORDER BY v) FROM generate_series(0, 20000) AS v"
        ).fetchone()
        null = conn.execute(f"SELECT {bucket_sql('v')} FROM (VALUES (NULL::integer)) AS t(v)").fetchone()
    assert row is not None and ints is not None and null is not None
    in_sql = np.asarray(row[0])
    in_python = bucket_of(values)
    mismatches = np.nonzero(in_sql != in_python)[0]
    assert mismatches.size == 0, list(zip(values[mismatches][:10], in_sql[mismatches][:10], strict=True))
    # On an integer column (latency_ms is one) too.
    assert ints[0] == bucket_of(np.arange(0, 20001)).tolist()
    # A missing latency (a queued execution) belongs to no bucket.
    assert null[0] is None


def test_quantiles_are_within_the_error_bound_of_numpy() -> None:
    sample = np.random.default_rng(42).lognormal(mean=5.5, sigma=0.9, size=500_000)
    buckets, counts = _histogram(sample)
    qs = [0.01, 0.1, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999]
    estimates = quantiles(buckets, counts, qs)
    for q, estimate in zip(qs, estimates, strict=True):
        exact = float(np.percentile(sample, q * 100))
        assert estimate is not None
        assert abs(estimate - exact) / exact <= RELATIVE_ERROR_BOUND, (q, estimate, exact)


def test_min_and_max_quantiles_report_the_extreme_buckets() -> None:
    sample = np.array([3.0, 50.0, 700.0, 9_000.0])
    buckets, counts = _histogram(sample)
    low, high = quantiles(buckets, counts, [0.0, 1.0])
    assert low == bucket_midpoint(int(bucket_of([3.0])[0]))
    assert high == bucket_midpoint(int(bucket_of([9_000.0])[0]))


def test_histograms_merge_by_concatenation() -> None:
    """Sparse histograms of two groups, simply concatenated (unsorted, repeated buckets), merge."""
    rng = np.random.default_rng(7)
    fast = rng.lognormal(mean=4.0, sigma=0.5, size=50_000)
    slow = rng.lognormal(mean=7.0, sigma=0.5, size=10_000)
    fb, fc = _histogram(fast)
    sb, sc = _histogram(slow)
    merged = quantiles(sb + fb, sc + fc, [0.5, 0.9, 0.99])
    whole = quantiles(*_histogram(np.concatenate([fast, slow])), [0.5, 0.9, 0.99])
    assert merged == whole


def test_empty_histogram_has_no_quantiles() -> None:
    assert quantiles([], [], [0.5, 0.99]) == [None, None]
    assert quantiles([10, 20], [0, 0], [0.5]) == [None]


def test_single_value_histogram() -> None:
    (estimate,) = quantiles([100], [7], [0.95])
    assert estimate is not None
    assert math.isclose(estimate, bucket_midpoint(100))
