"""The operators' benchmark: Errors and Latency queries against their raw-table versions, folding, pages.

    python -m bench.operate --size 10m           # seeds krowoc_bench_operate_10m, keeps it with --keep
    python -m bench.operate --size 10m --reuse   # measures a kept database again

In the same run it times every query behind the Errors and Latency pages (p95 of ``--repeat``
runs, warm) and its raw-table version (the same answer computed from ``prompt_executions``,
median of ``--raw-repeat`` runs), folding one minute of traffic at 100 executions/s into the
rollups with ``core.executions.refresh``, and both pages' server-side render with AppTest (caches
cleared before each run). Results go to ``bench/RESULTS.md`` under ``operate-<size>``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import Connection, text

from bench.harness import SIZES, Figure, Section, database_named, p95_of, timed
from bench.run import write_results
from core.adapters import migrate
from core.adapters.db import Database, libpq_url, make_engine
from core.adapters.runtime import freeze_startup_heap
from core.config import Settings
from core.domain.histogram import bucket_sql
from core.domain.models import TimeWindow
from core.endpoints import resolve_endpoints
from core.executions import refresh as rollups_refresh
from core.executions.records import write_executions
from devstack.seed import SeedOptions, seed
from devstack.stack import EmbeddedStack
from queries import errors, latency
from queries.grain import grain_for, whole_buckets
from queries.latency import Metric, SeriesBy

WINDOWS = {"1h": timedelta(hours=1), "6h": timedelta(hours=6), "24h": timedelta(days=1), "30d": timedelta(days=30)}
QUERY_GOAL_MS = 50.0
SPEEDUP_GOAL = 30.0
FOLD_GOAL_MS = 100.0
RENDER_GOAL_MS = 500.0

_RANGE = "created_at >= :start AND created_at < :end"

RAW: dict[str, str] = {
    "error_rate_by_category": f"""
        SELECT date_trunc(:grain, created_at), error_category, count(*)
        FROM prompt_executions WHERE {_RANGE} GROUP BY 1, 2""",
    "top_errors": f"""
        SELECT error_category, error_code, error_message, count(*), max(created_at)
        FROM prompt_executions WHERE {_RANGE} AND error_category IS NOT NULL GROUP BY 1, 2, 3""",
    "category_changes": """
        SELECT error_category, count(*) FILTER (WHERE created_at >= :start), count(*) FILTER (WHERE created_at < :start)
        FROM prompt_executions WHERE created_at >= :previous AND created_at < :end GROUP BY 1""",
    "latency_percentiles": f"""
        SELECT date_trunc(:grain, created_at),
               percentile_cont(ARRAY[0.5, 0.9, 0.95, 0.99]) WITHIN GROUP (ORDER BY latency_ms)
        FROM prompt_executions WHERE {_RANGE} AND latency_ms IS NOT NULL GROUP BY 1""",
    "ttfb_percentiles_by_model": f"""
        SELECT date_trunc(:grain, created_at), provider, model,
               percentile_cont(ARRAY[0.5, 0.9, 0.95, 0.99]) WITHIN GROUP (ORDER BY ttfb_ms)
        FROM prompt_executions WHERE {_RANGE} AND ttfb_ms IS NOT NULL GROUP BY 1, 2, 3""",
    "latency_distribution": f"""
        SELECT {bucket_sql("latency_ms")}, count(*)
        FROM prompt_executions WHERE {_RANGE} AND latency_ms IS NOT NULL GROUP BY 1""",
    "slowest_executions": f"""
        SELECT id, created_at, provider, model, status, latency_ms
        FROM prompt_executions WHERE {_RANGE} AND latency_ms IS NOT NULL
        ORDER BY latency_ms DESC LIMIT 20""",
}

FAST: dict[str, Callable[[Connection, TimeWindow], Any]] = {
    "error_rate_by_category": lambda c, w: errors.error_rate_by_category(c, w),
    "top_errors": lambda c, w: errors.top_errors(c, w),
    "category_changes": lambda c, w: errors.category_changes(c, w),
    "latency_percentiles": lambda c, w: latency.latency_percentiles(c, w),
    "ttfb_percentiles_by_model": lambda c, w: latency.latency_percentiles(c, w, metric=Metric.TTFB, by=SeriesBy.MODEL),
    "latency_distribution": lambda c, w: latency.latency_distribution(c, w),
    "slowest_executions": lambda c, w: latency.slowest_executions(c, w),
}


def measure_queries(url: str, end: datetime, section: Section, repeat: int, raw_repeat: int) -> None:
    """Time each Errors/Latency query against its raw-table version, per window, in the same run."""
    # The process is set up as the dashboard's is once its services are built (core.adapters.runtime).
    freeze_startup_heap()
    engine = make_engine(url, pool_size=1)  # configured as the dashboard's (core.adapters.db)
    try:
        with engine.connect() as conn:
            # The floor under any query: one round trip to PostgreSQL and back through SQLAlchemy.
            floor = p95_of(timed(lambda: conn.execute(text("SELECT 1")).all(), repeat))
            section.add(Figure("a round trip (SELECT 1) p95, the floor under every query", floor, "ms"))
            for label, span in WINDOWS.items():
                window = TimeWindow(start=end - span, end=end)
                grain = grain_for(window)
                whole = whole_buckets(window, grain)
                for name, query in FAST.items():
                    query(conn, window)
                    fast = p95_of(timed(lambda q=query, w=window: q(conn, w), repeat))  # type: ignore[misc]
                    params = {
                        "grain": grain.value,
                        "start": whole.start,
                        "end": whole.end,
                        "previous": whole.start - (whole.end - whole.start),
                    }
                    if name == "slowest_executions":
                        # The raw version: the window's rows sorted without the latency index.
                        params.update(start=window.start, end=window.end)
                        conn.execute(text("SET enable_indexscan = off"))
                    sql = text(RAW[name])
                    raw = statistics.median(timed(lambda s=sql, p=params: conn.execute(s, p).all(), raw_repeat))  # type: ignore[misc]
                    conn.execute(text("RESET enable_indexscan"))
                    conn.rollback()
                    section.add(
                        Figure(
                            f"{label} {name} ({grain.value}) p95",
                            fast,
                            "ms",
                            f"goal <= {QUERY_GOAL_MS:.0f} ms",
                            fast <= QUERY_GOAL_MS,
                        )
                    )
                    # Where the raw table itself answers within 30 round trips, 30x is out of reach.
                    note = (
                        f"(the raw query takes {raw / floor:,.0f} round trips)"
                        if raw / fast < SPEEDUP_GOAL and raw < SPEEDUP_GOAL * floor
                        else ""
                    )
                    section.add(
                        Figure(
                            f"{label} {name}: raw {raw:,.0f} ms / rollup",
                            raw / fast,
                            "x",
                            f"goal >= {SPEEDUP_GOAL:.0f}x",
                            raw / fast >= SPEEDUP_GOAL,
                            note,
                        )
                    )
    finally:
        engine.dispose()


def measure_folding(url: str, section: Section, rounds: int) -> None:
    """Write one minute of traffic at 100 executions/s, then time folding it into the rollups."""
    from tests.operate_support import random_records

    rollups_refresh.refresh(url)  # start from a current watermark
    db = Database.from_urls(url)
    rng = random.Random(1)
    samples: list[float] = []
    try:
        with psycopg.connect(libpq_url(url)) as conn:
            newest = conn.execute("SELECT max(created_at) FROM prompt_executions").fetchone()[0]  # type: ignore[index]
        minute = newest.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        for i in range(rounds):
            with db.write() as conn:
                write_executions(conn, random_records(rng, 6000, minute + timedelta(minutes=i), timedelta(seconds=59)))
            start = time.perf_counter()
            report = rollups_refresh.refresh(url)
            samples.append((time.perf_counter() - start) * 1000)
            assert report.new_executions == 6000, report
    finally:
        db.dispose()
    worst = p95_of(samples)
    section.add(
        Figure(
            f"fold one minute at 100/s (6,000 executions) p95 of {rounds} (median {statistics.median(samples):.0f} ms)",
            worst,
            "ms",
            f"goal <= {FOLD_GOAL_MS:.0f} ms",
            worst <= FOLD_GOAL_MS,
        )
    )


def measure_render(url: str, redis_url: str, section: Section, repeat: int) -> None:
    """Time both pages' server-side render (AppTest, caches cleared before each run)."""
    import os

    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from core.config import PROJECT_ROOT, get_settings
    from core.domain.models import Actor, Role

    os.environ.update(
        KROWOC_DATABASE_URL=url,
        KROWOC_REDIS_URL=redis_url,
        KROWOC_REDIS_KEY_PREFIX="krowoc-bench:",
        KROWOC_DEV_LOGIN="true",
    )
    os.environ.pop("KROWOC_PROMETHEUS_URL", None)
    get_settings.cache_clear()
    for page in ("errors.py", "latency.py"):
        for label, params in (("24h", {"range": "24h"}), ("30d", {"range": "30d"})):
            samples = []
            for i in range(repeat + 1):
                at = AppTest.from_file(str(PROJECT_ROOT / "dashboard" / "app.py"), default_timeout=60)
                at.session_state["actor"] = Actor(id="dev:bench", role=Role.OPERATOR, dev_login=True)
                at.switch_page(str(PROJECT_ROOT / "pages" / page))
                at.query_params.update(params)
                st.cache_data.clear()
                start = time.perf_counter()
                at.run()
                elapsed = (time.perf_counter() - start) * 1000
                assert not at.exception, [e.value for e in at.exception]
                if i:  # the first run imports the page's modules
                    samples.append(elapsed)
            worst = p95_of(samples)
            section.add(
                Figure(
                    f"{page} {label} render, cold caches, p95 (median {statistics.median(samples):.0f} ms)",
                    worst,
                    "ms",
                    f"goal <= {RENDER_GOAL_MS:.0f} ms",
                    worst <= RENDER_GOAL_MS,
                )
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1m", help="1m, 10m or a number of executions")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--raw-repeat", type=int, default=3)
    parser.add_argument("--fold-rounds", type=int, default=10)
    parser.add_argument("--render-repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    parser.add_argument("--reuse", action="store_true", help="reuse a kept database instead of seeding")
    args = parser.parse_args(argv)
    size = args.size.lower()
    executions = SIZES.get(size) or int(size.replace("_", ""))
    settings = Settings()
    if settings.embedded:
        EmbeddedStack(settings).up()
    urls = resolve_endpoints(settings)
    name = f"krowoc_bench_operate_{size}"
    admin, url = database_named(urls.database_owner_url, "postgres"), database_named(urls.database_owner_url, name)
    command = "python -m bench.operate " + " ".join(argv if argv is not None else sys.argv[1:])
    setup, reading, writing = (
        Section("Set-up"),
        Section("Errors and Latency queries: rollup vs raw table"),
        Section("Folding and pages"),
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        server = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not (args.reuse and exists):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        if not (args.reuse and exists):
            migrate.upgrade(url)
            start = time.perf_counter()
            seed(url, SeedOptions(executions=executions, days=args.days, seed=42), progress=True)
            setup.add(Figure(f"seed {executions:,} executions over {args.days} days", time.perf_counter() - start, "s"))
            start = time.perf_counter()
            rollups_refresh.refresh(url)
            setup.add(Figure("first refresh (builds execution_error_hour whole)", time.perf_counter() - start, "s"))
            with psycopg.connect(libpq_url(url), autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE")
        with psycopg.connect(libpq_url(url)) as conn:
            end = conn.execute("SELECT max(created_at) FROM prompt_executions").fetchone()[0]  # type: ignore[index]
        print("queries:", flush=True)
        measure_queries(url, end, reading, args.repeat, args.raw_repeat)
        print("folding and pages:", flush=True)
        measure_render(url, urls.redis_url, writing, args.render_repeat)
        measure_folding(url, writing, args.fold_rounds)
    finally:
        if not args.keep:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    write_results(f"operate-{size}", command, server, [setup, reading, writing])
    return 0


if __name__ == "__main__":
    sys.exit(main())
