"""The benchmark: seed a platform, then time the dashboard's reads against their raw-table versions.

    python -m bench.run --size 1m          # or 10m, or a number of executions

It makes its own database on the configured (or embedded) PostgreSQL, seeds it, measures, writes
``bench/RESULTS.md`` (one section per size, replaced on each run) and drops the database unless
``--keep`` is given. Goals are printed next to each figure; a miss is reported, never hidden.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psutil
import psycopg
from sqlalchemy import Connection, text

from bench.harness import RESULTS, SIZES, Figure, Section, database_named, machine, p95_of, timed, write_part
from core.adapters import migrate
from core.adapters.db import make_engine
from core.adapters.runtime import freeze_startup_heap
from core.config import PROJECT_ROOT, Settings
from core.domain.models import TimeWindow
from core.endpoints import resolve_endpoints
from core.executions import rollups
from devstack.seed import SeedOptions, seed
from devstack.stack import EmbeddedStack

# The raw-table versions of the overview's charts: what the page would cost without rollups.
RAW_QUERIES: dict[str, str] = {
    "executions_over_time": """
        SELECT date_trunc(:grain, created_at) AS bucket, count(*) AS executions,
               count(*) FILTER (WHERE error_category IS NOT NULL) AS errors
        FROM prompt_executions WHERE created_at >= :start AND created_at < :end
        GROUP BY 1 ORDER BY 1""",
    "p95_latency_over_time": """
        SELECT date_trunc(:grain, created_at) AS bucket,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95
        FROM prompt_executions WHERE created_at >= :start AND created_at < :end AND latency_ms IS NOT NULL
        GROUP BY 1 ORDER BY 1""",
    "execution_totals": """
        SELECT count(*), count(*) FILTER (WHERE error_category IS NOT NULL), sum(cost_usd),
               percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)
        FROM prompt_executions WHERE created_at >= :start AND created_at < :end""",
}


def _rollup_queries() -> dict[str, Callable[[Connection, TimeWindow], Any]]:
    from queries import overview

    return {
        "executions_over_time": overview.executions_over_time,
        "p95_latency_over_time": overview.p95_latency_over_time,
        "execution_totals": overview.execution_totals,
    }


def measure_queries(
    url: str, end: datetime, section: Section, repeat: int, raw_repeat: int, *, at_goal_scale: bool = True
) -> None:
    """Time every overview query on its rollup and its raw-table version in the same run.

    The goals are set at 10 million executions; below that scale the figures are shown without a verdict.
    """
    from queries.grain import grain_for

    # The process is set up as the dashboard's is once its services are built (core.adapters.runtime).
    freeze_startup_heap()
    engine = make_engine(url, pool_size=1)  # configured as the dashboard's (core.adapters.db)
    windows = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
    try:
        with engine.connect() as conn:
            for label, span in windows.items():
                window = TimeWindow(start=end - span, end=end)
                grain = grain_for(window).value
                for name, query in _rollup_queries().items():
                    query(conn, window)  # warm the cache, as a dashboard in use would have
                    fast = timed(lambda q=query, w=window: q(conn, w), repeat)  # type: ignore[misc]
                    raw_sql = text(RAW_QUERIES[name])
                    params = {"grain": grain, "start": window.start, "end": window.end}
                    conn.execute(raw_sql, params).all()
                    slow = timed(lambda s=raw_sql, p=params: conn.execute(s, p).all(), raw_repeat)  # type: ignore[misc]
                    p95 = p95_of(fast)
                    speedup = statistics.median(slow) / max(statistics.median(fast), 1e-6)
                    section.add(
                        Figure(
                            f"{name} [{label}] p95 (median {statistics.median(fast):.1f} ms)",
                            p95,
                            "ms",
                            "goal <= 50 ms" if at_goal_scale else "",
                            p95 <= 50 if at_goal_scale else None,
                        )
                    )
                    section.add(Figure(f"{name} [{label}] raw table median", statistics.median(slow), "ms"))
                    section.add(
                        Figure(
                            f"{name} [{label}] speed-up over raw",
                            speedup,
                            "x",
                            "goal >= 30x" if at_goal_scale else "",
                            speedup >= 30 if at_goal_scale else None,
                        )
                    )
                conn.rollback()
    finally:
        engine.dispose()


def measure_render(url: str, redis_url: str, section: Section, repeat: int) -> None:
    """Time the overview page's server-side render with AppTest (logged in with the dev login)."""
    from streamlit.testing.v1 import AppTest

    from core.config import get_settings

    os.environ.update(
        {
            "KROWOC_DATABASE_URL": url,
            "KROWOC_REDIS_URL": redis_url,
            "KROWOC_DEV_LOGIN": "true",
            "KROWOC_REDIS_KEY_PREFIX": "krowoc-bench:",
        }
    )
    get_settings.cache_clear()
    app = str(PROJECT_ROOT / "dashboard" / "app.py")
    samples = []
    for i in range(repeat + 1):
        at = AppTest.from_file(app, default_timeout=60)
        at.session_state["actor"] = _bench_actor()
        start = time.perf_counter()
        at.run()
        elapsed = (time.perf_counter() - start) * 1000
        if at.exception:
            raise RuntimeError(f"the overview failed to render: {at.exception[0].value}")
        if i:  # the first run imports Streamlit and the page modules
            samples.append(elapsed)
    p95 = p95_of(samples)
    section.add(
        Figure(
            f"overview render (AppTest) p95 (median {statistics.median(samples):.0f} ms)",
            p95,
            "ms",
            "goal <= 500 ms",
            p95 <= 500,
        )
    )


def _bench_actor() -> Any:
    from core.domain.models import Actor, Role

    return Actor(id="bench@krowoc.dev", role=Role.ADMIN, display_name="Bench", dev_login=True)


def measure_memory(url: str, redis_url: str, section: Section) -> None:
    """Open every page in a real browser and reads the Streamlit process's resident memory."""
    chromium = Settings().chromium_path
    if not chromium.exists():
        section.add(
            Figure(
                "streamlit RSS after opening every page",
                None,
                "MB",
                "goal < 500 MB",
                None,
                f"not measured: {chromium} missing (apt-get install chromium)",
            )
        )
        return
    from playwright.sync_api import sync_playwright

    env = dict(
        os.environ,
        KROWOC_DATABASE_URL=url,
        KROWOC_REDIS_URL=redis_url,
        KROWOC_DEV_LOGIN="true",
        KROWOC_REDIS_KEY_PREFIX="krowoc-bench:",
    )
    port = 8599
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(PROJECT_ROOT / "dashboard" / "app.py"),
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(port),
            "--server.headless",
            "true",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=PROJECT_ROOT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=str(chromium),
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                ],
            )
            page = browser.new_page()
            page.goto(base, timeout=60_000)
            page.get_by_label("Your name").fill("bench", timeout=60_000)
            page.get_by_role("button", name="Log in").click()
            page.get_by_role("heading", name="Overview").wait_for(timeout=60_000)
            page.wait_for_timeout(2000)
            links = page.locator('[data-testid="stSidebarNav"] a')
            hrefs = [links.nth(i).get_attribute("href") for i in range(links.count())]
            for href in hrefs:
                if href:
                    page.goto(href if href.startswith("http") else base + href, timeout=60_000)
                    page.wait_for_load_state("networkidle")
                    page.wait_for_timeout(1500)
            browser.close()
        rss = psutil.Process(proc.pid).memory_info().rss / 2**20
        section.add(Figure(f"streamlit RSS after opening {len(hrefs)} page(s)", rss, "MB", "goal < 500 MB", rss < 500))
    finally:
        proc.terminate()
        proc.wait(10)


def write_results(size_label: str, command: str, server: str, sections: list[Section]) -> None:
    """Replace this size's part of bench/RESULTS.md, keeping the other parts."""
    lines = [
        f"## {size_label} executions",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}; PostgreSQL: {server}.",
        "",
        f"Command: `{command}`",
        "",
    ]
    for section in sections:
        lines += [f"### {section.title}", "", *section.table(), ""]
    write_part(size_label, lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1m", help="1m, 10m or a number of executions")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--repeat", type=int, default=30, help="runs per rollup query")
    parser.add_argument("--raw-repeat", type=int, default=3, help="runs per raw-table query")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    parser.add_argument("--reuse", action="store_true", help="reuse a kept database instead of seeding")
    parser.add_argument("--no-browser", action="store_true", help="skip the memory measurement")
    args = parser.parse_args(argv)
    size_label = args.size.lower()
    executions = SIZES.get(size_label) or int(args.size.replace("_", ""))

    settings = Settings()
    if settings.embedded:
        EmbeddedStack(settings).up()
    urls = resolve_endpoints(settings)
    name = f"krowoc_bench_{size_label}"
    admin = database_named(urls.database_owner_url, "postgres")
    url = database_named(urls.database_owner_url, name)
    command = (
        "make bench SIZE=" + size_label
        if "MAKELEVEL" in os.environ
        else "python -m bench.run " + " ".join(argv if argv is not None else sys.argv[1:])
    )
    seeding = Section("Seeding and rollups")
    reading = Section("Overview queries: rollup vs raw table (same run)")
    page = Section("Dashboard")
    print(f"benchmark: {executions:,} executions over {args.days} days into {name}", flush=True)
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
            report = seed(url, SeedOptions(executions=executions, days=args.days, seed=42), progress=True)
            total = time.perf_counter() - start
            seeding.add(
                Figure(
                    "whole seed (load, indexes, rollups, analyze)",
                    total,
                    "s",
                    "goal <= 60 s at 10M" if executions >= 10_000_000 else "",
                    total <= 60 if executions >= 10_000_000 else None,
                )
            )
            seeding.add(Figure("seed throughput", executions / total, "rows/s"))
            for step, seconds in report.seconds.items():
                seeding.add(Figure(f"  step: {step}", seconds, "s"))
        with psycopg.connect(url) as conn:
            end = conn.execute("SELECT max(created_at) FROM prompt_executions").fetchone()[0]  # type: ignore[index]
            counts = conn.execute(
                "SELECT (SELECT count(*) FROM execution_rollup_minute), (SELECT count(*) FROM execution_rollup_hour)"
            ).fetchone()
        seeding.add(Figure("minute rollup rows", float(counts[0]), "rows"))  # type: ignore[index]
        seeding.add(Figure("hour rollup rows", float(counts[1]), "rows"))  # type: ignore[index]
        start = time.perf_counter()
        rollups.rebuild(url)
        seeding.add(
            Figure(
                "rollup rebuild from the raw table (SQL, krowoc-admin rollups rebuild)",
                time.perf_counter() - start,
                "s",
            )
        )
        print("overview queries:", flush=True)
        measure_queries(url, end, reading, args.repeat, args.raw_repeat, at_goal_scale=executions >= 10_000_000)
        print("dashboard:", flush=True)
        measure_render(url, urls.redis_url, page, repeat=10)
        if not args.no_browser:
            measure_memory(url, urls.redis_url, page)
    finally:
        if not args.keep:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    write_results(size_label, command, server, [seeding, reading, page])
    print(f"wrote {RESULTS}")
    print(json.dumps({"size": size_label, "executions": executions}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
