"""The audit chain's cost: what it adds to an admin action, and how long verifying a million rows takes.

    python -m bench.audit                  # --rows 1000000 --actions 400

It makes its own database on the configured (or embedded) PostgreSQL and drops it afterwards, uses
the configured (or embedded) Redis under a key prefix of its own, and writes its section of
``bench/RESULTS.md`` (``<!-- size:audit -->``). Goals: the chain adds 2 ms or less at p95 to an
action; ``krowoc-admin audit verify`` checks 1 million rows in 30 s or less.

The action measured is a suspension and a restore of one user (the action's row commits with the
change) and a cache namespace invalidation (an intent row, then the outcome row); each is timed
with the chain trigger on and, on the same database, with it off.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable

import psycopg
import redis

from bench.harness import Figure, Section, machine, own_database, p95_of, write_part
from core.adapters.db import libpq_url
from core.bootstrap import Services, build_services
from core.cache.service import NamespaceInvalidation
from core.config import Settings, get_settings
from core.domain.models import Actor, AuditSource, Role
from core.endpoints import resolve_endpoints
from core.users import UserStatusChange

SUPPORT = Actor(id="bench-support", role=Role.SUPPORT, source=AuditSource.CLI)
OPERATOR = Actor(id="bench-operator", role=Role.OPERATOR, source=AuditSource.CLI)
UNTHROTTLED = "1000000/100000"
ROUNDS = 10


def _chain(url: str, enabled: bool) -> None:
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(f"ALTER TABLE audit_log {'ENABLE' if enabled else 'DISABLE'} TRIGGER audit_log_chain")


def _actions(services: Services, user_id: int, count: int) -> tuple[list[float], list[float]]:
    """Time ``count`` database actions (suspend/restore) and ``count`` external ones (invalidations), in ms."""
    inside: list[float] = []
    outside: list[float] = []
    for n in range(count):
        change = UserStatusChange(user_id=user_id, reason=f"bench {n}")
        start = time.perf_counter()
        (services.users.suspend if n % 2 == 0 else services.users.restore)(SUPPORT, change)
        inside.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        services.cache_admin.invalidate_namespace(OPERATOR, NamespaceInvalidation(namespace="user-profile", reason="b"))
        outside.append((time.perf_counter() - start) * 1000)
    return inside, outside


def _fill(url: str, rows: int, on_progress: Callable[[int], None]) -> float:
    """Append ``rows`` audit rows through the chain trigger, in batches; return the seconds it took."""
    started = time.perf_counter()
    batch = 50_000
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        for done in range(0, rows, batch):
            size = min(batch, rows - done)
            conn.execute(
                """
                INSERT INTO audit_log (actor, actor_role, action, target_type, target_id, reason, request_id,
                                       source, outcome, after)
                SELECT 'bench-' || (n %% 40), 'support', 'user.suspend', 'user', (n %% 5000)::text,
                       'ticket ' || n, md5(n::text), 'cli', 'success', jsonb_build_object('status', 'suspended')
                FROM generate_series(%s::bigint, %s::bigint) AS n
                """,
                (done, done + size - 1),
            )
            on_progress(done + size)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    """Run the audit benchmark and write its section of bench/RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000, help="Audit rows to verify.")
    parser.add_argument("--actions", type=int, default=400, help="Actions timed with the chain on, and off.")
    args = parser.parse_args(argv)

    base = get_settings()
    endpoints = resolve_endpoints(base)
    prefix = f"krowoc-bench-audit-{uuid.uuid4().hex[:8]}:"
    server = endpoints.database_owner_url or endpoints.database_url
    section = Section("The audit chain")
    print(f"Audit chain benchmark on {machine()}", flush=True)
    with own_database(server, f"krowoc_bench_audit_{uuid.uuid4().hex[:8]}") as url:
        settings = Settings(
            database_url=url,
            redis_url=endpoints.redis_url,
            redis_key_prefix=prefix,
            allow_owner=True,
            action_limit_default=UNTHROTTLED,
            action_limits={},
        )
        services = build_services(settings)
        try:
            with psycopg.connect(libpq_url(url), autocommit=True) as conn:
                user_id = conn.execute(
                    "INSERT INTO users (email, display_name, tier, status) "
                    "VALUES ('bench@krowoc.test', 'Bench', 'free', 'active') RETURNING id"
                ).fetchone()[0]  # type: ignore[index]
            _actions(services, user_id, 20)  # warm the pools and the plans
            # Chain on and off in alternating rounds, so a drift of the machine weighs on both alike.
            on_inside, on_outside, off_inside, off_outside = [], [], [], []
            per_round = max(1, args.actions // ROUNDS)
            for _ in range(ROUNDS):
                inside, outside = _actions(services, user_id, per_round)
                on_inside += inside
                on_outside += outside
                _chain(url, enabled=False)
                inside, outside = _actions(services, user_id, per_round)
                off_inside += inside
                off_outside += outside
                _chain(url, enabled=True)
        finally:
            services.close()
            client = redis.Redis.from_url(endpoints.redis_url)
            for key in client.scan_iter(match=f"{prefix}*", count=1000):
                client.delete(key)
            client.close()
        for label, on, off in (
            ("suspend/restore (row with the change)", on_inside, off_inside),
            ("namespace invalidation (intent, then outcome)", on_outside, off_outside),
        ):
            section.add(Figure(f"{label}: p95, chain on", p95_of(on), "ms"))
            section.add(Figure(f"{label}: p95, chain off", p95_of(off), "ms"))
            added = p95_of(on) - p95_of(off)
            section.add(Figure(f"{label}: added by the chain at p95", added, "ms", "≤ 2 ms", added <= 2.0))

    # On a database of its own: the rows the actions wrote with the chain off follow no chain.
    with own_database(server, f"krowoc_bench_audit_{uuid.uuid4().hex[:8]}") as url:
        print(f"  appending {args.rows:,} audit rows through the chain trigger...", flush=True)
        seconds = _fill(url, args.rows, lambda done: print(f"    {done:,} rows", flush=True))
        section.add(Figure(f"append {args.rows:,} rows through the trigger", seconds, "s", note="(set-up)"))
        verifier = build_services(settings.model_copy(update={"database_url": url}))
        try:
            started = time.perf_counter()
            verdict = verifier.audit.verify()
            elapsed = time.perf_counter() - started
        finally:
            verifier.close()
        assert verdict.first_break is None, verdict
        goal_met = elapsed <= 30.0 if verdict.rows >= 1_000_000 else None
        section.add(Figure(f"audit verify, {verdict.rows:,} rows", elapsed, "s", "≤ 30 s per 1M rows", goal_met))

    lines = [
        "## The audit chain",
        "",
        f"Command: `python -m bench.audit --rows {args.rows} --actions {args.actions}`. Machine: {machine()}.",
        f"Each action timed {args.actions} times with the chain trigger on and as many off, in {ROUNDS} alternating "
        "rounds on one database.",
        "",
        *section.table(),
        "",
    ]
    write_part("audit", lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
