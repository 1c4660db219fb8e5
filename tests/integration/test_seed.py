"""The seed: realistic, deterministic, loaded with rollups equal to the SQL aggregation, safe to re-run."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest

from core.adapters.db import libpq_url
from core.domain.histogram import bucket_of, bucket_sql
from core.executions import rollups
from devstack.seed import SeedOptions, SeedRefused, hour_aligned_chunks, seed
from tests.support.databases import SHARED_PLAN

END = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _digest(url: str) -> tuple[str, str, str]:
    with psycopg.connect(libpq_url(url)) as conn:
        rows = conn.execute(
            """
            SELECT
              (SELECT md5(string_agg(e::text, '|' ORDER BY id)) FROM prompt_executions e),
              (SELECT md5(string_agg(u::text, '|' ORDER BY id)) FROM users u),
              (SELECT md5(string_agg(r::text, '|' ORDER BY bucket_start, provider, model, status, error_category))
                 FROM execution_rollup_minute r)
            """
        ).fetchone()
    assert rows is not None
    return rows[0], rows[1], rows[2]


def test_same_seed_gives_the_same_platform(make_database: Callable[..., str]) -> None:
    options = SeedOptions(executions=6_000, days=3, seed=11, end=END)
    first, second, other = make_database(), make_database(), make_database()
    seed(first, options, progress=False)
    seed(second, options, progress=False)
    seed(other, options.model_copy(update={"seed": 12}), progress=False)
    assert _digest(first) == _digest(second)
    assert _digest(first)[0] != _digest(other)[0]


def test_refuses_to_seed_twice_and_changes_nothing(make_database: Callable[..., str]) -> None:
    url = make_database()
    seed(url, SeedOptions(executions=2_000, days=2, seed=1, end=END), progress=False)
    before = _digest(url)
    with pytest.raises(SeedRefused, match="--reset"):
        seed(url, SeedOptions(executions=3_000, days=2, seed=2, end=END), progress=False)
    assert _digest(url) == before


def test_reset_replaces_the_data(make_database: Callable[..., str]) -> None:
    url = make_database()
    seed(url, SeedOptions(executions=2_000, days=2, seed=1, end=END), progress=False)
    report = seed(url, SeedOptions(executions=3_000, days=2, seed=2, end=END), reset=True, progress=False)
    with psycopg.connect(libpq_url(url)) as conn:
        count = conn.execute("SELECT count(*) FROM prompt_executions").fetchone()
        indexes = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'prompt_executions'")}
    assert report.executions == 3_000
    assert count == (3_000,)
    assert {"ix_prompt_executions_user_id_created_at", "ix_prompt_executions_request_id"} <= indexes


def test_seeded_rollups_equal_the_sql_aggregation_of_the_raw_table(seeded_database_url: str) -> None:
    columns = rollups.ROLLUP_COLUMNS
    with psycopg.connect(libpq_url(seeded_database_url)) as conn:
        conn.execute("CREATE TEMP TABLE seeded_minute AS SELECT * FROM execution_rollup_minute")
        conn.execute("CREATE TEMP TABLE seeded_hour AS SELECT * FROM execution_rollup_hour")
        rollups.rebuild_in(conn)
        for seeded, rebuilt in (
            ("seeded_minute", "execution_rollup_minute"),
            ("seeded_hour", "execution_rollup_hour"),
        ):
            (rows,) = conn.execute(f"SELECT count(*) FROM {rebuilt}").fetchone()  # type: ignore[misc]
            (missing,) = conn.execute(  # type: ignore[misc]
                f"SELECT count(*) FROM (SELECT {columns} FROM {rebuilt} EXCEPT ALL SELECT {columns} FROM {seeded}) d"
            ).fetchone()
            (extra,) = conn.execute(  # type: ignore[misc]
                f"SELECT count(*) FROM (SELECT {columns} FROM {seeded} EXCEPT ALL SELECT {columns} FROM {rebuilt}) d"
            ).fetchone()
            assert rows > 0
            assert (missing, extra) == (0, 0), f"{seeded} differs from the SQL rollup"
        conn.rollback()


def test_histogram_buckets_agree_between_python_and_postgres(seeded_database_url: str) -> None:
    with psycopg.connect(libpq_url(seeded_database_url)) as conn:
        rows = conn.execute(f"SELECT {bucket_sql('x')} FROM generate_series(0, 700000) AS x ORDER BY x").fetchall()
    in_sql = np.array([r[0] for r in rows])
    assert np.array_equal(in_sql, bucket_of(np.arange(0, 700001)))


def test_the_seeded_platform_looks_like_real_traffic(seeded_database_url: str) -> None:
    with psycopg.connect(libpq_url(seeded_database_url)) as conn:
        (executions,) = conn.execute("SELECT count(*) FROM prompt_executions").fetchone()  # type: ignore[misc]
        tiers = dict(conn.execute("SELECT tier, count(*) FROM users GROUP BY tier").fetchall())
        medians = dict(
            conn.execute(
                "SELECT model, percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) FROM prompt_executions "
                "WHERE status = 'succeeded' GROUP BY model"
            ).fetchall()
        )
        by_hour = dict(
            conn.execute(
                "SELECT extract(hour FROM created_at AT TIME ZONE 'UTC')::int, count(*) "
                "FROM prompt_executions GROUP BY 1"
            ).fetchall()
        )
        categories = {r[0] for r in conn.execute("SELECT DISTINCT error_category FROM prompt_executions")}
        # The worst 45-minute stretch of OpenAI's provider_unavailable rate: the outage lasts 45
        # minutes at +55 %, so some stretch of three quarter-hours is mostly inside it, while the
        # 0.3 % base rate makes even 30 % in a stretch of 10+ executions practically impossible.
        worst_openai_rate = conn.execute(
            """
            SELECT max(failed::float / total) FROM (
              SELECT sum(total) OVER w AS total, sum(failed) OVER w AS failed FROM (
                SELECT date_bin('15 minutes', created_at, timestamptz '2000-01-01') AS h, count(*) AS total,
                       count(*) FILTER (WHERE error_category = 'provider_unavailable') AS failed
                FROM prompt_executions WHERE provider = 'openai' GROUP BY 1
              ) AS quarters
              WINDOW w AS (ORDER BY h ROWS BETWEEN CURRENT ROW AND 2 FOLLOWING)
            ) AS stretches WHERE total >= 10
            """
        ).fetchone()
        (payloads,) = conn.execute("SELECT count(*) FROM execution_payloads").fetchone()  # type: ignore[misc]
        (cost_ok,) = conn.execute(  # type: ignore[misc]
            "SELECT bool_and(cost_usd >= 0) AND sum(cost_usd) > 0 FROM prompt_executions"
        ).fetchone()
        span = conn.execute("SELECT max(created_at) - min(created_at) FROM prompt_executions").fetchone()
    assert executions == SHARED_PLAN.executions
    assert tiers["free"] > tiers["pro"] > tiers["team"] > tiers["enterprise"] > 0
    assert medians["gpt-4o-mini"] < medians["gpt-4o"] < medians["o3-mini"]
    assert by_hour[15] > 2 * by_hour[3], "the daily traffic wave peaks in the afternoon"
    assert {"provider_unavailable", "provider_rate_limited", "content_filtered", None} <= categories
    assert worst_openai_rate is not None and worst_openai_rate[0] > 0.3, "the outage shows"
    assert 0 < payloads < executions * 0.05
    assert cost_ok
    assert span is not None and span[0] > timedelta(days=SHARED_PLAN.days - 1)


def test_chunks_never_split_an_hour() -> None:
    start = np.datetime64("2026-01-01T00:00", "us")
    times = np.sort(start + (np.random.default_rng(3).random(50_000) * 86400e6 * 2).astype("timedelta64[us]"))
    chunks = hour_aligned_chunks(times, 3_000)
    assert chunks[0][0] == 0 and chunks[-1][1] == times.size
    for (_, hi), (lo, _) in itertools.pairwise(chunks):
        assert hi == lo
        assert times[hi - 1].astype("datetime64[h]") != times[hi].astype("datetime64[h]")
