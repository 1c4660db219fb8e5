"""The feature-flag benchmark: 500 flags in every environment of a real Unleash, listed and rendered.

    python -m bench.flags                 # --flags 500 --repeat 30 --page-repeat 10

It starts its own unleash-server (the stack's, on the venv's Node) on a free loopback port against a database of
its own on the configured (or embedded) PostgreSQL, enables Unleash 6's third environment where there
is one (Unleash 7 and newer ship development and production only), creates the flags
through the Admin API, then times ``FlagService.list_flags`` (what the page reads: the catalog in a
handful of Admin API calls, the audit-log attribution and the last-known-state write to Redis) and
the Feature flags page's server-side render (AppTest, listing cache cleared before each run). It
prints the figures with their goals; ``--write`` also puts them in ``bench/RESULTS.md`` under
``<!-- size:flags -->``. Everything it made is removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import redis

from bench.harness import RESULTS, Figure, Section, machine, own_database, p95_of, write_part
from core.adapters.db import libpq_url
from core.bootstrap import build_services
from core.config import PROJECT_ROOT, Settings, get_settings
from core.domain.models import Actor, Role
from core.endpoints import resolve_endpoints
from core.flags.models import FlagError, UnleashEndpoint
from core.flags.unleash_admin import UnleashAdmin
from devstack.unleash import UnleashServer, missing_requirement

TYPES = ("release", "experiment", "operational", "kill-switch", "permission")
LISTING_GOAL_MS = 300.0
PAGE_GOAL_MS = 1000.0


@contextmanager
def own_unleash(database_url: str) -> Iterator[UnleashEndpoint]:
    """Start an unleash-server for the run on a free port and stops it afterwards."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    with tempfile.TemporaryDirectory(prefix="krowoc-bench-unleash-") as folder:
        server = UnleashServer(Path(folder), port, database_url)
        try:
            yield server.up()
        finally:
            server.down()


def create_flags(endpoint: UnleashEndpoint, count: int) -> tuple[float, int]:
    """Create ``count`` flags with a strategy in every environment, some on and rolled out; return (seconds, envs)."""
    admin = UnleashAdmin(endpoint.api_url, endpoint.admin_token, timeout=30)
    # Unleash 6 has a disabled "default" environment to turn on; 7 and newer have none, and only
    # Unleash Enterprise may add one: the flags then go into the two it has.
    with contextlib.suppress(FlagError):
        admin.enable_environment("default")
    environments = admin.environments()
    start = time.perf_counter()

    def one(index: int) -> None:
        name = f"bench-flag-{index:04d}"
        admin.create_flag("default", name, TYPES[index % len(TYPES)], f"benchmark flag {index}")
        for position, env in enumerate(environments):
            rollout = (index * 7 + position * 31) % 101
            admin.add_strategy(
                "default", name, env, "flexibleRollout", {"rollout": str(rollout), "stickiness": "default"}
            )
            if (index + position) % 3 != 0:
                admin.set_enabled("default", name, env, True)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, range(count)))
    admin.close()
    return time.perf_counter() - start, len(environments)


def measure_listing(settings: Settings, section: Section, flags: int, repeat: int) -> None:
    """Time FlagService.list_flags with every flag in every environment."""
    services = build_services(settings)
    try:
        first = services.flags.list_flags()
        assert first.live and len(first.catalog.flags) >= flags, "Unleash did not list every flag"
        envs = len(first.catalog.environments)
        samples = []
        for _ in range(repeat):
            start = time.perf_counter()
            services.flags.list_flags()
            samples.append((time.perf_counter() - start) * 1000)
    finally:
        services.close()
    p95, median = p95_of(samples), statistics.median(samples)
    section.add(
        Figure(
            f"listing {flags} flags x {envs} environments (FlagService.list_flags) p95 (median {median:.0f} ms)",
            p95, "ms", f"goal <= {LISTING_GOAL_MS:.0f} ms", p95 <= LISTING_GOAL_MS,
        )
    )  # fmt: skip


def measure_page(section: Section, flags: int, repeat: int) -> None:
    """Time the Feature flags page's server-side render (AppTest), each run reading Unleash afresh."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(PROJECT_ROOT / "dashboard" / "app.py"), default_timeout=60)
    at.session_state["actor"] = Actor(id="bench@krowoc.dev", role=Role.PRODUCT, display_name="Bench", dev_login=True)
    at.run()
    at.switch_page("../pages/flags.py")
    at.run()
    samples = []
    for _ in range(repeat):
        st.cache_data.clear()
        start = time.perf_counter()
        at.run()
        samples.append((time.perf_counter() - start) * 1000)
        if at.exception:
            raise RuntimeError(f"the page failed: {at.exception[0].value}")
    p95, median = p95_of(samples), statistics.median(samples)
    section.add(
        Figure(
            f"Feature flags page render (AppTest), {flags} flags, listing read from Unleash each time, p95 "
            f"(median {median:.0f} ms)",
            p95, "ms", f"goal <= {PAGE_GOAL_MS:.0f} ms", p95 <= PAGE_GOAL_MS,
        )
    )  # fmt: skip


def write_results(command: str, section: Section) -> None:
    """Replace the flags section of bench/RESULTS.md, keeping every other section."""
    lines = [
        "## Feature flags",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}; a real unleash-server 8 started by the "
        "benchmark on 127.0.0.1.",
        "",
        f"Command: `{command}`",
        "",
        *section.table(digits=4),
    ]
    write_part("flags", lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flags", type=int, default=500, help="flags to create")
    parser.add_argument("--repeat", type=int, default=30, help="listings to time")
    parser.add_argument("--page-repeat", type=int, default=10, help="page renders to time")
    parser.add_argument("--write", action="store_true", help="also write the figures into bench/RESULTS.md")
    args = parser.parse_args(argv)
    command = "python -m bench.flags " + " ".join(sys.argv[1:] if argv is None else argv)
    problem = missing_requirement()
    if problem:
        print(f"cannot run: {problem}", file=sys.stderr)
        return 2

    urls = resolve_endpoints(Settings())
    server_url = libpq_url(urls.database_owner_url)
    run = uuid.uuid4().hex[:8]
    prefix = f"krowoc-bench-flags-{run}:"
    section = Section("Feature flags")
    with (
        own_database(server_url, f"bench_flags_unleash_{run}", migrated=False) as unleash_db,
        own_database(server_url, f"bench_flags_app_{run}", migrated=True) as app_db,
        own_unleash(unleash_db) as endpoint,
        tempfile.TemporaryDirectory(prefix="krowoc-bench-flags-backup-") as backup,
    ):
        seconds, environments = create_flags(endpoint, args.flags)
        name = f"creating {args.flags} flags x {environments} environments through the Admin API"
        section.add(Figure(name, seconds, "s"))
        env = {
            "KROWOC_DATABASE_URL": app_db,
            "KROWOC_REDIS_URL": urls.redis_url,
            "KROWOC_REDIS_KEY_PREFIX": prefix,
            "KROWOC_DEV_LOGIN": "true",
            "KROWOC_UNLEASH_URL": endpoint.api_url,
            "KROWOC_UNLEASH_ADMIN_TOKEN": endpoint.admin_token,
            "KROWOC_UNLEASH_CLIENT_TOKEN": endpoint.client_tokens["production"],
            "KROWOC_UNLEASH_BACKUP_DIR": backup,
        }
        os.environ.update(env)
        get_settings.cache_clear()
        try:
            measure_listing(get_settings(), section, args.flags, args.repeat)
            measure_page(section, args.flags, args.page_repeat)
        finally:
            client = redis.Redis.from_url(urls.redis_url)
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()
    if args.write:
        write_results(command.strip(), section)
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
