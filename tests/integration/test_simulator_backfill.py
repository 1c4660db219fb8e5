"""The live demo's backfill: the executions due since the newest one, written newest first, in the daily shape."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from core.adapters.db import libpq_url
from core.bootstrap import Services, build_services
from devstack.seed.profiles import traffic_shape
from devstack.simulator.engine import TrafficSimulator
from tests.support.databases import SHARED_PLAN, SeedPlan
from tests.support.settings import settings_for

RATE = 1.0


def _rows(url: str, sql: str, *params: object) -> list[tuple[object, ...]]:
    with psycopg.connect(libpq_url(url)) as conn:
        return list(conn.execute(sql, params).fetchall())


@pytest.fixture()
def gapped(seeded_copy: Callable[[SeedPlan], str], redis_url: str, prefix: str) -> Iterator[tuple[str, Services]]:
    """Yield a seeded platform whose last 90 minutes of traffic are missing, with services on it."""
    url = seeded_copy(SHARED_PLAN)
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("DELETE FROM execution_payloads WHERE created_at > now() - interval '90 minutes'")
        conn.execute("DELETE FROM prompt_executions WHERE created_at > now() - interval '90 minutes'")
    services = build_services(settings_for(url, redis_url, prefix))
    yield url, services
    services.close()


def _expected(simulator: TrafficSimulator, start: datetime, end: datetime) -> float:
    """Integrate the shaped rate over [start, end), a minute at a time."""
    total, at = 0.0, start
    while at < end:
        step = min(timedelta(minutes=1), end - at)
        total += simulator.rate_at(at) * step.total_seconds()
        at += step
    return total


def test_a_backfill_writes_the_gap_since_the_newest_execution_in_the_daily_shape(
    gapped: tuple[str, Services],
) -> None:
    url, services = gapped
    [(newest_before,)] = _rows(url, "SELECT max(created_at) FROM prompt_executions")
    assert isinstance(newest_before, datetime)
    simulator = TrafficSimulator(services, rate=RATE, seed=3, refresh_every=None, shape=traffic_shape)

    report = simulator.backfill()

    assert report.start == newest_before and report.end is not None
    assert datetime.now(UTC) - report.end < timedelta(seconds=5)
    [(count, first, last)] = _rows(
        url,
        "SELECT count(*), min(created_at), max(created_at) FROM prompt_executions WHERE created_at > %s",
        report.start,
    )
    assert count == report.executions == simulator.stats.backfilled
    expected = _expected(simulator, report.start, report.end)
    assert math.isclose(int(count), expected, rel_tol=0.01, abs_tol=3), (count, expected)
    assert isinstance(first, datetime) and isinstance(last, datetime)
    assert first - report.start < timedelta(minutes=1) and last <= report.end
    # Every minute of the gap has traffic, so the Overview's 1 h range is never empty.
    [(empty_minutes,)] = _rows(
        url,
        """SELECT count(*) FROM generate_series(date_trunc('minute', %s::timestamptz) + interval '1 minute',
                                                 date_trunc('minute', %s::timestamptz) - interval '1 minute',
                                                 interval '1 minute') AS m
           WHERE NOT EXISTS (SELECT 1 FROM prompt_executions e
                             WHERE e.created_at >= m AND e.created_at < m + interval '1 minute')""",
        report.start,
        report.end,
    )
    assert empty_minutes == 0
    # The executions look like the simulator's: every provider, some failures with a category.
    [(providers, failed, uncategorised)] = _rows(
        url,
        """SELECT count(DISTINCT provider), count(*) FILTER (WHERE status <> 'succeeded'),
                  count(*) FILTER (WHERE status <> 'succeeded' AND error_category IS NULL)
           FROM prompt_executions WHERE created_at > %s""",
        report.start,
    )
    assert providers == 4 and uncategorised == 0
    assert isinstance(failed, int) and 0 < failed < count // 5


def test_a_second_backfill_right_after_has_nothing_left_to_write(gapped: tuple[str, Services]) -> None:
    url, services = gapped
    simulator = TrafficSimulator(services, rate=RATE, seed=4, refresh_every=None, shape=traffic_shape)
    first = simulator.backfill()

    again = simulator.backfill()

    assert first.executions > 0
    assert again.executions <= 3
    [(count,)] = _rows(url, "SELECT count(*) FROM prompt_executions WHERE created_at > %s", first.start)
    assert count == first.executions + again.executions


def test_a_backfill_fills_at_most_its_longest_gap(gapped: tuple[str, Services]) -> None:
    url, services = gapped
    simulator = TrafficSimulator(services, rate=RATE, seed=5, refresh_every=None)

    report = simulator.backfill(max_gap=timedelta(minutes=10))

    assert report.start is not None and report.end is not None
    assert timedelta(minutes=10) <= report.end - report.start < timedelta(minutes=10, seconds=5)
    [(count, first)] = _rows(
        url,
        "SELECT count(*), min(created_at) FROM prompt_executions WHERE created_at > now() - interval '89 minutes'",
    )
    assert count == report.executions and math.isclose(int(count), 600 * RATE, rel_tol=0.02, abs_tol=3)
    assert isinstance(first, datetime) and first >= report.start


def test_an_unseeded_database_is_not_backfilled(make_database: Callable[..., str], redis_url: str, prefix: str) -> None:
    url = make_database()
    services = build_services(settings_for(url, redis_url, prefix))
    try:
        report = TrafficSimulator(services, rate=RATE, refresh_every=None).backfill()
    finally:
        services.close()

    assert (report.start, report.end, report.executions) == (None, None, 0)
    assert report.describe() == "Nothing to backfill."
    assert _rows(url, "SELECT count(*) FROM prompt_executions") == [(0,)]
