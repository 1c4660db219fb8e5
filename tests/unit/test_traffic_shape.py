"""The traffic's daily and weekly shape, shared by the seed and the live simulator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from devstack.seed.generator import _traffic_weights
from devstack.seed.profiles import MEAN_SHAPE, traffic_shape

MONDAY = datetime(2026, 11, 30, tzinfo=UTC)


def test_the_shape_peaks_mid_afternoon_and_is_quieter_at_night_and_on_weekends() -> None:
    afternoon, night = traffic_shape(MONDAY.replace(hour=15)), traffic_shape(MONDAY.replace(hour=3))
    saturday = traffic_shape((MONDAY + timedelta(days=5)).replace(hour=15))

    assert afternoon == pytest.approx(1.65)
    assert night == pytest.approx(0.35)
    assert saturday == pytest.approx(afternoon * 0.6)


def test_the_shape_averages_its_mean_over_a_week() -> None:
    minutes = [traffic_shape(MONDAY + timedelta(minutes=m)) for m in range(7 * 24 * 60)]

    assert sum(minutes) / len(minutes) == pytest.approx(MEAN_SHAPE, rel=1e-6)


def test_the_seed_draws_its_minutes_in_the_same_shape() -> None:
    minutes = [MONDAY + timedelta(minutes=m) for m in range(0, 7 * 24 * 60, 37)]
    stamps = np.array([m.replace(tzinfo=None) for m in minutes], dtype="datetime64[m]")

    assert _traffic_weights(stamps) == pytest.approx([traffic_shape(m) for m in minutes])
