"""The cache benchmark: memory and Redis hits, rate limits, the Cache page, a page's data cold and warm.

It measures memory-tier and Redis hits, rate-limit checks, the Cache page on 1 million keys, and a
dashboard page's data cold against warm.

    python -m bench.cache                 # --keys 1000000 --repeat 5000

It starts a Valkey of its own on a free loopback port (stopped at the end), makes its own database
on the configured (or embedded) PostgreSQL and drops it afterwards, and writes its section of
``bench/RESULTS.md`` (``<!-- size:cache -->``, replaced on each run; ``bench.run`` keeps it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import redis
from sqlalchemy import insert

from bench.harness import RESULTS, Figure, Section, machine, own_database, p95_of, write_part
from core.adapters.db import libpq_url
from core.adapters.redis import RedisClient
from core.adapters.tables import LeaderboardSnapshotRow, PromptRow, UserRow
from core.bootstrap import Services, build_services
from core.cache import keys
from core.cache.keys import Namespace
from core.cache.reads import _USER
from core.config import PROJECT_ROOT, Settings
from core.domain.models import Actor, Role, Tier
from core.endpoints import resolve_endpoints
from core.ratelimit import RateLimiter
from devstack.stack import _valkey_bin

PREFIX = "krowoc-bench-cache:"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def own_valkey() -> Iterator[str]:
    """Start a Valkey on a free loopback port for the benchmark and stop it (by its pid) afterwards."""
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="krowoc-bench-valkey-")
    proc = subprocess.Popen(
        [str(_valkey_bin()), "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", workdir, "--maxmemory", "2gb", "--maxmemory-policy", "allkeys-lru"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the benchmark's Valkey did not start") from None
                time.sleep(0.05)
        client.close()
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


def seed_small(services: Services, users: int = 1000) -> None:
    """Insert users, prompts and a 100-row weekly user leaderboard."""
    now = datetime.now(UTC)
    tiers = list(Tier)
    with services.db.write() as conn:
        conn.execute(
            insert(UserRow),
            [
                {"id": i, "email": f"user{i}@example.com", "display_name": f"User {i}", "tier": tiers[i % 4].value}
                for i in range(1, users + 1)
            ],
        )
        conn.execute(insert(PromptRow), [{"id": i, "owner_id": i, "title": f"Prompt {i}"} for i in range(1, 201)])
        for subject in ("user", "prompt"):
            for window in ("day", "week", "all"):
                conn.execute(
                    insert(LeaderboardSnapshotRow),
                    [
                        {
                            "computed_at": now, "subject_type": subject, "time_window": window, "rank": rank,
                            "subject_id": rank, "avg_score": Decimal(1) - Decimal(rank) / 1000,
                            "executions": 100 + rank, "min_executions": 20,
                        }
                        for rank in range(1, 101)
                    ],
                )  # fmt: skip


def timed_ms(fn: Callable[[], Any], repeat: int) -> list[float]:
    """Time ``fn`` ``repeat`` times; return milliseconds per call."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return samples


def latency(section: Section, name: str, samples: list[float], goal_ms: float) -> None:
    p95 = p95_of(samples)
    section.add(
        Figure(f"{name} p95 (median {statistics.median(samples):.4f} ms)", p95, "ms", f"goal <= {goal_ms} ms",
               p95 <= goal_ms)
    )  # fmt: skip


def measure_hits(services: Services, section: Section, repeat: int) -> None:
    """Memory-tier hits, Redis hits on loopback and rate-limit checks."""
    users = services.cached_users
    users.profile(1)
    latency(section, "in-process (memory tier) hit", timed_ms(lambda: users.profile(1), repeat * 4), 0.05)
    key = keys.user_profile(2)
    cache = services.cache
    cache.get_or_load(key, lambda: users._load(2), _USER, use_memory=False)
    redis_hit = timed_ms(lambda: cache.get_or_load(key, lambda: users._load(2), _USER, use_memory=False), repeat)
    latency(section, "Redis hit on loopback (GET + decode + count)", redis_hit, 1.0)
    limiter = RateLimiter(services.redis, PREFIX)
    limiter.check(3, Tier.ENTERPRISE)
    checks = timed_ms(lambda: limiter.check(3, Tier.ENTERPRISE), repeat)
    latency(section, "rate-limit check (one Lua script)", checks, 1.0)


def fill_keys(client: RedisClient, count: int) -> float:
    """Write ``count`` user-profile keys with spread TTLs (as a busy cache holds); return seconds taken."""
    start = time.perf_counter()
    payload = b'{"id":1,"email":"x@example.com","display_name":"X","tier":"pro","status":"active",' \
              b'"created_at":"2026-01-01T00:00:00Z","last_seen_at":null}'  # fmt: skip
    batch = 20_000
    for first in range(0, count, batch):
        pipe = client.pipeline(transaction=False)
        for i in range(first, min(count, first + batch)):
            ns = Namespace.USER_PROFILE if i % 10 else Namespace.PROMPT_METADATA
            name = f"user:{i}" if i % 10 else f"prompt:{i}"
            pipe.set(f"{keys.namespace_prefix(PREFIX, ns)}v0:{name}", payload, ex=3600 + i % 10_800)
        pipe.execute()
    return time.perf_counter() - start


def _app_env(database_url: str, redis_url: str) -> None:
    from core.config import get_settings

    os.environ.update(
        {
            "KROWOC_DATABASE_URL": database_url,
            "KROWOC_REDIS_URL": redis_url,
            "KROWOC_DEV_LOGIN": "true",
            "KROWOC_REDIS_KEY_PREFIX": PREFIX,
        }
    )
    get_settings.cache_clear()


def _page(path: str) -> Any:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(PROJECT_ROOT / "dashboard" / "app.py"), default_timeout=60)
    at.session_state["actor"] = Actor(id="bench@krowoc.dev", role=Role.ADMIN, display_name="Bench", dev_login=True)
    at.run()
    at.switch_page(path)
    return at


def _run_page(at: Any) -> float:
    start = time.perf_counter()
    at.run()
    elapsed = (time.perf_counter() - start) * 1000
    if at.exception:
        raise RuntimeError(f"the page failed: {at.exception[0].value}")
    return elapsed


def measure_cache_page(section: Section, keys_in_redis: int, repeat: int) -> None:
    """Render the Cache page server-side (AppTest) with the keyspace filled."""
    at = _page("../pages/cache.py")
    _run_page(at)
    samples = [_run_page(at) for _ in range(repeat)]
    p95, median = p95_of(samples), statistics.median(samples)
    section.add(
        Figure(
            f"Cache page render (AppTest) with {keys_in_redis:,} keys in Redis, p95 (median {median:.0f} ms)",
            p95, "ms", "goal <= 1000 ms", p95 <= 1000,
        )
    )  # fmt: skip


def measure_warm_vs_cold(services: Services, section: Section, repeat: int) -> None:
    """Time a dashboard read path cold (namespaces bumped, memory dropped) against warm, and the page as a whole."""
    boards, users, cache = services.cached_leaderboards, services.cached_users, services.cache

    def leaderboard_with_names() -> int:
        board = boards.latest("user", "week", limit=100)
        assert board is not None
        return len(users.profiles([entry.subject_id for entry in board.entries]))

    def cold() -> None:
        cache.bump_namespace(Namespace.LEADERBOARD)
        cache.bump_namespace(Namespace.USER_PROFILE)

    cold_samples, warm_samples = [], []
    for _ in range(repeat):
        cold()
        cold_samples.append(timed_ms(leaderboard_with_names, 1)[0])
        warm_samples.extend(timed_ms(leaderboard_with_names, 3))
    cold_ms, warm_ms = statistics.median(cold_samples), statistics.median(warm_samples)
    section.add(Figure("leaderboard top 100 with user names: cold median", cold_ms, "ms"))
    section.add(Figure("leaderboard top 100 with user names: warm median", warm_ms, "ms"))
    speedup = cold_ms / max(warm_ms, 1e-6)
    # No page reads this path (the Leaderboards page reads names from the snapshot): the cache's
    # effect on 101 keys, shown without a verdict; the goal is the page's, below.
    section.add(Figure("leaderboard read path (101 keys, no page reads it) warm over cold", speedup, "x"))

    import streamlit as st

    at = _page("../pages/leaderboards.py")
    _run_page(at)
    page_cold, page_warm = [], []
    for _ in range(max(3, repeat // 2)):
        cold()
        st.cache_data.clear()
        page_cold.append(_run_page(at))
        page_warm.append(_run_page(at))
    speedup = statistics.median(page_cold) / max(statistics.median(page_warm), 1e-6)
    section.add(
        Figure(
            f"Leaderboards page render (AppTest) warm over cold (cold {statistics.median(page_cold):.0f} ms, "
            f"warm {statistics.median(page_warm):.0f} ms)",
            speedup, "x", "goal >= 5x", speedup >= 5,
            "(includes Streamlit's own script run, the same cold or warm)",
        )
    )  # fmt: skip


def write_results(command: str, sections: list[Section]) -> None:
    """Replace the cache section of bench/RESULTS.md, keeping every other section."""
    lines = [
        "## Cache, rate limits and the Cache page",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}; Redis: a Valkey started by the benchmark "
        "on 127.0.0.1.",
        "",
        f"Command: `{command}`",
        "",
    ]
    for section in sections:
        lines += [f"### {section.title}", "", *section.table(digits=4), ""]
    write_part("cache", lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=1_000_000, help="keys to fill Redis with for the page render")
    parser.add_argument("--repeat", type=int, default=5000, help="calls per latency figure")
    parser.add_argument("--page-repeat", type=int, default=10, help="renders per page figure")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args(argv)
    command = "python -m bench.cache " + " ".join(sys.argv[1:] if argv is None else argv)

    server_url = libpq_url(resolve_endpoints(Settings()).database_owner_url)
    hits = Section("Latency per call")
    page = Section("Pages")
    with (
        own_valkey() as redis_url,
        own_database(server_url, f"krowoc_bench_cache_{uuid.uuid4().hex[:8]}") as database_url,
    ):
        settings = Settings(database_url=database_url, redis_url=redis_url, redis_key_prefix=PREFIX)
        services = build_services(settings)
        try:
            seed_small(services)
            measure_hits(services, hits, args.repeat)
            _app_env(database_url, redis_url)
            measure_warm_vs_cold(services, page, args.page_repeat)
            seconds = fill_keys(services.redis, args.keys)
            page.add(Figure(f"filling Redis with {args.keys:,} keys", seconds, "s"))
            measure_cache_page(page, int(services.redis.dbsize()), args.page_repeat)
        finally:
            services.close()
    if not args.no_write:
        write_results(command.strip(), [hits, page])
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
