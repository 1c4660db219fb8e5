"""Benchmark of support's reads: one heavy user's executions, an execution's detail, leaderboards, CSV export.

    python -m bench.support --size 1m            # or 10m, or a number of executions
    python -m bench.support --size 1m --keep     # keep the database (then --reuse)

It makes its own database (``krowoc_bench_support_<size>``) on the configured or embedded
PostgreSQL, seeds it, inserts a heavy user with ``--heavy`` executions spread over the seeded
range, and measures:

- the first page and every later page of the heavy user's executions (keyset, 50 rows), p95;
- an execution's detail by id, p95;
- a leaderboard read from the cache (Redis tier and memory tier) and from the snapshot table, p95;
- the CSV export of the heavy user's executions in a child process: rows/s and peak RSS.

Figures are printed with their goals as a Markdown table for ``bench/RESULTS.md``. The database is
dropped at the end unless ``--keep``; the Redis keys it wrote are deleted.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import psutil
import psycopg
import redis

from bench.harness import SIZES, Figure, Section, database_named, p95_of
from core.adapters import migrate
from core.adapters.db import Database, libpq_url
from core.bootstrap import build_services
from core.config import Settings
from core.domain.models import Actor, AuditSource, Role, TimeWindow
from core.endpoints import resolve_endpoints
from core.leaderboards import LeaderboardRecompute, Subject, Window
from devstack.seed import SeedOptions, seed
from devstack.stack import EmbeddedStack
from queries import executions as q
from queries.executions import ExecutionFilters, SortKey

HEAVY_EMAIL = "heavy.user@bench.krowoc.test"
PREFIX = "krowoc-bench-support:"


SUPPORT = Section("Support: executions, detail, leaderboards, export")


def report(name: str, value: float, unit: str, goal: str = "", met: bool | None = None) -> None:
    """Print a figure with its goal and keep it for the Markdown table."""
    SUPPORT.add(Figure(name, value, unit, goal, met))


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


HEAVY_INSERT = """
INSERT INTO prompt_executions (created_at, user_id, prompt_id, provider, model, status, error_category,
    error_code, error_message, latency_ms, ttfb_ms, input_tokens, output_tokens, cost_usd, score, request_id,
    finished_at)
SELECT t, %(user)s, 1 + g %% %(prompts)s,
       (ARRAY['openai', 'anthropic', 'google', 'mistral'])[(1 + g %% 4)::int],
       (ARRAY['gpt-4o', 'claude-sonnet-4', 'gemini-2.0-flash', 'mistral-large'])[(1 + g %% 4)::int],
       CASE WHEN g %% 40 = 0 THEN 'failed' ELSE 'succeeded' END,
       CASE WHEN g %% 40 = 0 THEN 'provider_unavailable' END,
       CASE WHEN g %% 40 = 0 THEN '503' END,
       CASE WHEN g %% 40 = 0 THEN 'Service unavailable' END,
       (200 + (g * 7919) %% 6000)::int, (50 + (g * 104729) %% 900)::int, (100 + g %% 3000)::int, (50 + g %% 800)::int,
       round(((g * 31) %% 1000) / 100000.0, 6), CASE WHEN g %% 3 = 0 THEN NULL ELSE ((g * 17) %% 1000) / 1000.0 END,
       'req_heavy_' || g, t + interval '2 seconds'
FROM generate_series(1::bigint, %(n)s) g,
     LATERAL (SELECT %(start)s::timestamptz + %(span)s::interval * ((g * 0.6180339887498949) %% 1) AS t) spread
"""


def prepare(url: str, executions: int, days: int, heavy: int) -> int:
    """Seed the platform and insert the heavy user; return their id."""
    migrate.upgrade(url)
    seed(url, SeedOptions(executions=executions, days=days, seed=42), progress=True)
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        start, end, user_id, prompts = conn.execute(
            "SELECT min(created_at), max(created_at), (SELECT max(id) + 1 FROM users), (SELECT count(*) FROM prompts) "
            "FROM prompt_executions"
        ).fetchone()  # type: ignore[misc]
        conn.execute(
            "INSERT INTO users (id, email, display_name, tier, created_at) VALUES (%s, %s, 'Heavy User', 'enterprise', "
            "now() - interval '400 days')",
            (user_id, HEAVY_EMAIL),
        )
        clock = time.perf_counter()
        conn.execute(
            HEAVY_INSERT,
            {"user": user_id, "prompts": prompts, "n": heavy, "start": start, "span": end - start},
        )
        conn.execute("ANALYZE prompt_executions")
        print(f"inserted {heavy:,} executions of user {user_id} in {time.perf_counter() - clock:.1f} s", flush=True)
    return int(user_id)


def measure(url: str, redis_url: str, user_id: int, repeat: int) -> None:
    settings = Settings(database_url=url, redis_url=redis_url, redis_key_prefix=PREFIX, statement_timeout_ms=60_000)
    services = build_services(settings)
    db: Database = services.db
    try:
        with db.read() as conn:
            end = conn.exec_driver_sql("SELECT max(created_at) FROM prompt_executions").scalar_one()
            total = conn.exec_driver_sql("SELECT count(*) FROM prompt_executions").scalar_one()
            mine = conn.exec_driver_sql(
                f"SELECT count(*) FROM prompt_executions WHERE user_id = {user_id}"
            ).scalar_one()
        print(f"{total:,} executions, {mine:,} of the heavy user", flush=True)
        window = TimeWindow(start=end - timedelta(days=99), end=end + timedelta(minutes=1))
        filters = ExecutionFilters(window=window, user_id=user_id)

        def first_page(f: ExecutionFilters = filters) -> q.ExecutionPage:
            with db.read() as conn:
                return q.search(conn, f)

        first_page()
        samples = [timed(first_page) for _ in range(repeat)]
        report("heavy user, first page (50 newest), p95", p95_of(samples), "ms", "goal <= 20 ms", p95_of(samples) <= 20)

        # Every later page, in order, as a person clicking "Next page" would.
        later: list[float] = []
        cursor = first_page().next_cursor
        seen = 50
        while cursor is not None:
            start = time.perf_counter()
            with db.read() as conn:
                page = q.search(conn, filters, after=cursor)
            later.append((time.perf_counter() - start) * 1000)
            seen += len(page.rows)
            cursor = page.next_cursor
        report(
            f"heavy user, every later page ({len(later):,} pages, {seen:,} rows), p95",
            p95_of(later),
            "ms",
            "goal <= 20 ms",
            p95_of(later) <= 20,
        )
        report("heavy user, later pages, max", max(later), "ms")
        for label, extra in (
            ("failed only", ExecutionFilters(window=window, user_id=user_id, status=q.ExecutionStatus.FAILED)),
            ("sorted by latency", ExecutionFilters(window=window, user_id=user_id, sort=SortKey.LATENCY)),
            ("sorted by cost", ExecutionFilters(window=window, user_id=user_id, sort=SortKey.COST)),
        ):
            first_page(extra)
            runs = [timed(lambda e=extra: first_page(e)) for _ in range(max(5, repeat // 10))]
            report(f"heavy user, first page, {label}, p95", p95_of(runs), "ms")
        last_day = TimeWindow(start=end - timedelta(days=1), end=end + timedelta(minutes=1))
        first_page(ExecutionFilters(window=last_day))
        runs = [timed(lambda: first_page(ExecutionFilters(window=last_day))) for _ in range(max(5, repeat // 10))]
        report("all users, last 24 h, first page, p95", p95_of(runs), "ms")

        # Execution detail by id: the heavy user's and anyone's.
        with db.read() as conn:
            ids = [
                int(i)
                for i in conn.exec_driver_sql(
                    f"SELECT id FROM prompt_executions WHERE user_id = {user_id} ORDER BY random() LIMIT {repeat}"
                ).scalars()
            ]
            top = conn.exec_driver_sql("SELECT max(id) FROM prompt_executions").scalar_one()
        rng = random.Random(7)
        ids += [rng.randint(1, int(top)) for _ in range(repeat)]

        def detail(execution_id: int) -> None:
            with db.read() as conn:
                found = q.execution_detail(conn, execution_id)
                if found is not None:
                    q.executions_around(conn, found.execution, n=0)

        def detail_only(execution_id: int) -> None:
            with db.read() as conn:
                q.execution_detail(conn, execution_id)

        samples = [timed(lambda i=i: detail_only(i)) for i in ids]
        report("execution detail by id, p95", p95_of(samples), "ms", "goal <= 10 ms", p95_of(samples) <= 10)
        samples = [timed(lambda i=i: detail(i)) for i in ids[: max(10, repeat // 2)]]
        report("execution detail + executions around it, p95", p95_of(samples), "ms")

        # Leaderboards: recompute, then read from the snapshot table and through the cache.
        operator = Actor(id="bench", role=Role.OPERATOR, source=AuditSource.CLI)
        refresh_ms = timed(lambda: services.leaderboards.refresh(operator, LeaderboardRecompute(reason="benchmark")))
        report("leaderboard recompute (6 boards from the raw table)", refresh_ms / 1000, "s")
        board = services.leaderboards
        samples = [timed(lambda: board.from_table(Subject.USER, Window.WEEK)) for _ in range(repeat)]
        report(
            "leaderboard read from the snapshot table, p95",
            p95_of(samples),
            "ms",
            "goal <= 100 ms",
            p95_of(samples) <= 100,
        )
        board.top(Subject.USER, Window.WEEK)

        def from_redis() -> None:
            services.cache.drop_local()
            board.top(Subject.USER, Window.WEEK)

        samples = [timed(from_redis) for _ in range(repeat)]
        report(
            "leaderboard read from the cache (Redis tier), p95",
            p95_of(samples),
            "ms",
            "goal <= 5 ms",
            p95_of(samples) <= 5,
        )
        board.top(Subject.USER, Window.WEEK)
        samples = [timed(lambda: board.top(Subject.USER, Window.WEEK)) for _ in range(repeat)]
        report(
            "leaderboard read from the cache (memory tier), p95",
            p95_of(samples),
            "ms",
            "goal <= 5 ms",
            p95_of(samples) <= 5,
        )
    finally:
        services.close()

    # The export runs in a child process so its peak memory is the export's own.
    child = subprocess.run(
        [sys.executable, "-m", "bench.support", "export", "--url", url, "--user", str(user_id)],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(child.stdout.strip().splitlines()[-1])
    report(
        f"CSV export of the heavy user ({result['rows']:,} rows, {result['mb']:.1f} MB)",
        result["rows_per_s"],
        "rows/s",
        "goal >= 50,000 rows/s",
        result["rows_per_s"] >= 50_000,
    )
    report(
        "CSV export: peak RSS of the exporting process",
        result["peak_rss_mb"],
        "MB",
        "goal < 300 MB",
        result["peak_rss_mb"] < 300,
    )
    report("CSV export: RSS of the exporting process before it", result["before_mb"], "MB")
    report("CSV export: RSS growth during the export", result["growth_mb"], "MB")


def export(url: str, user_id: int) -> None:
    """Export the user's executions to /dev/null as the Executions page does, and print the figures as JSON."""
    db = Database.from_urls(url, statement_timeout_ms=600_000)
    process = psutil.Process()
    peak = [process.memory_info().rss]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.005)

    with db.read() as conn:
        end = conn.exec_driver_sql("SELECT max(created_at) FROM prompt_executions").scalar_one()
    filters = ExecutionFilters(
        window=TimeWindow(start=end - timedelta(days=99), end=end + timedelta(minutes=1)), user_id=user_id
    )
    before = process.memory_info().rss
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    rows = 0
    size = 0
    start = time.perf_counter()
    with open("/dev/null", "wb") as sink, db.read(timeout_ms=600_000) as conn:
        for chunk in q.export_csv(conn, filters):
            sink.write(chunk.data)
            rows += chunk.rows
            size += len(chunk.data)
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    # Sampled, not ru_maxrss: Linux carries the parent's high-water mark into a child across exec.
    peak_rss = peak[0]
    db.dispose()
    print(
        json.dumps(
            {
                "rows": rows,
                "mb": size / 2**20,
                "seconds": seconds,
                "rows_per_s": rows / seconds,
                "peak_rss_mb": peak_rss / 2**20,
                "growth_mb": (peak[0] - before) / 2**20,
                "before_mb": before / 2**20,
            }
        )
    )


def markdown(size: str, command: str, server: str) -> str:
    lines = [
        f"### Support: executions, detail, leaderboards, export ({size})",
        "",
        f"Measured {datetime.now().astimezone():%Y-%m-%d %H:%M %Z} on {psutil.cpu_count()} cores; PostgreSQL {server}.",
        "",
        f"Command: `{command}`",
        "",
        *SUPPORT.table(),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["export"]:
        sub = argparse.ArgumentParser()
        sub.add_argument("--url", required=True)
        sub.add_argument("--user", type=int, required=True)
        parsed = sub.parse_args(args_list[1:])
        export(parsed.url, parsed.user)
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1m", help="1m, 10m or a number of executions")
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--heavy", type=int, default=100_000, help="executions of the heavy user")
    parser.add_argument("--repeat", type=int, default=200, help="runs per measured read")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    parser.add_argument("--reuse", action="store_true", help="reuse a kept database instead of seeding")
    args = parser.parse_args(args_list)
    label = args.size.lower()
    executions = SIZES.get(label) or int(args.size.replace("_", ""))

    settings = Settings()
    if settings.embedded:
        EmbeddedStack(settings).up()
    urls = resolve_endpoints(settings)
    name = f"krowoc_bench_support_{label}"
    admin, url = database_named(urls.database_owner_url, "postgres"), database_named(urls.database_owner_url, name)
    with psycopg.connect(admin, autocommit=True) as conn:
        server = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not (args.reuse and exists):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        if args.reuse and exists:
            with psycopg.connect(url) as conn:
                user_id = int(conn.execute("SELECT id FROM users WHERE email = %s", (HEAVY_EMAIL,)).fetchone()[0])  # type: ignore[index]
        else:
            user_id = prepare(url, executions, args.days, args.heavy)
        measure(url, urls.redis_url, user_id, args.repeat)
    finally:
        client = redis.Redis.from_url(urls.redis_url)
        keys = list(client.scan_iter(match=f"{PREFIX}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        client.close()
        if not args.keep:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print()
    print(markdown(label, "python -m bench.support " + " ".join(args_list), server))
    return 0


if __name__ == "__main__":
    sys.exit(main())
