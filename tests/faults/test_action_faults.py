"""Every admin action with PostgreSQL or Redis frozen or killed at each step: no change without its row.

For each action and each fault, the action is attempted once on servers of this module's own, the
servers are let go on (or started again), the reaper runs, and then the cell checks:

- a change that happened has at least one audit row of that attempt (an intent at least);
- a ``success`` row has its change;
- a change whose outcome could not be written ends as ``unknown``.

The cells are written into docs/reliability.md (part ``actions``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
import redis

from core.adapters.db import libpq_url
from core.bootstrap import Services, build_services
from core.cache.keys import Namespace, rate_limit_key
from core.cache.service import NamespaceInvalidation
from core.domain.models import Role, Tier
from core.providers.breaker import BreakerOverride
from core.providers.service import BreakerChange
from core.ratelimit.service import RateLimitReset
from core.users import TierChange, UserStatusChange
from tests.faults.conftest import TIMEOUTS
from tests.support.faults import (
    PrivateServers,
    attempt,
    audit_rows_since,
    cell_text,
    check_cell,
    last_audit_id,
    write_part,
)
from tests.support.settings import actor, settings_for

pytestmark = pytest.mark.xdist_group("faults")

OPERATOR = actor(Role.OPERATOR, "operator@faults.test")
SUPPORT = actor(Role.SUPPORT, "support@faults.test")
PG, VALKEY = "postgres", "valkey"
FAULTS = {
    "pg-frozen-before": "PostgreSQL frozen before the action",
    "pg-frozen-after": "PostgreSQL frozen right after the change",
    "pg-killed-after": "PostgreSQL killed right after the change",
    "redis-frozen": "Redis frozen during the action",
    "redis-killed": "Redis killed before the action",
}
CELLS: dict[tuple[str, str], str] = {}


@dataclass
class Case:
    """An admin action: how to attempt it, the state it changes, and the call that makes the change."""

    name: str
    attempt: Callable[[Services, int], object]
    state: Callable[[Services, redis.Redis, int], object]
    effect: Callable[[Services], tuple[object, str]]
    prepare: Callable[[Services, redis.Redis, int], None] = lambda _s, _r, _n: None
    state_in_redis: bool = True


def _user_row(services: Services) -> tuple[str, str]:
    with psycopg.connect(libpq_url(services.settings.database_url or ""), connect_timeout=5) as conn:
        row = conn.execute("SELECT status, tier FROM users WHERE id = 1").fetchone()
    assert row is not None
    return str(row[0]), str(row[1])


def _restore(services: Services, raw: redis.Redis, n: int) -> None:
    with psycopg.connect(libpq_url(services.settings.database_url or ""), connect_timeout=5) as conn:
        conn.execute("UPDATE users SET status = 'active' WHERE id = 1")
    services.users.sessions.open(1, f"sid-{n}", json.dumps({"ip": "10.0.0.1"}))


WANTED: dict[str, Any] = {}
"""What the next attempt of an action asks for: the opposite of the state now, so a success is a change."""


def _flip_tier(services: Services, raw: redis.Redis, n: int) -> None:
    WANTED["tier"] = Tier.PRO if _user_row(services)[1] == Tier.FREE.value else Tier.FREE


def _flip_breaker(services: Services, raw: redis.Redis, n: int) -> None:
    now = services.provider_health.breakers.status("openai").override
    WANTED["override"] = BreakerOverride.CLOSED if now is BreakerOverride.OPEN else BreakerOverride.OPEN


def _drain(services: Services, raw: redis.Redis, n: int) -> None:
    for _ in range(5):
        services.rate_limits.limiter.check(1, Tier.FREE)


CASES = [
    Case(
        "cache.invalidate_namespace",
        lambda s, n: s.cache_admin.invalidate_namespace(
            OPERATOR, NamespaceInvalidation(namespace="user-profile", reason=f"fault {n}")
        ),
        lambda s, raw, n: s.cache.current_versions()[Namespace.USER_PROFILE],
        lambda s: (s.cache, "bump_namespace"),
    ),
    Case(
        "user.reset_rate_limit",
        lambda s, n: s.rate_limits.reset(SUPPORT, RateLimitReset(user_id=1, reason=f"fault {n}")),
        # The bucket refills as time passes: whether its key is there says whether it was reset.
        lambda s, raw, n: bool(raw.exists(rate_limit_key(s.settings.redis_key_prefix, 1))),
        lambda s: (s.rate_limits.limiter, "reset"),
        prepare=_drain,
    ),
    Case(
        "provider.force_breaker",
        lambda s, n: s.provider_health.force(
            OPERATOR,
            BreakerChange(provider="openai", override=WANTED["override"], reason="fault"),
        ),
        lambda s, raw, n: s.provider_health.breakers.status("openai").override,
        lambda s: (s.provider_health.breakers, "set_override"),
        prepare=_flip_breaker,
    ),
    Case(
        "user.suspend",
        lambda s, n: s.users.suspend(SUPPORT, UserStatusChange(user_id=1, reason=f"fault {n}")),
        lambda s, raw, n: (_user_row(s)[0], bool(raw.exists(s.users.sessions.session_key(f"sid-{n}")))),
        lambda s: (s.users.sessions, "drop"),
        prepare=_restore,
    ),
    Case(
        "user.change_tier",
        lambda s, n: s.users.change_tier(SUPPORT, TierChange(user_id=1, tier=WANTED["tier"], reason=f"fault {n}")),
        lambda s, raw, n: _user_row(s)[1],
        lambda s: (s.users, "_set_user"),
        prepare=_flip_tier,
        state_in_redis=False,
    ),
]


@pytest.fixture(scope="module", autouse=True)
def matrix() -> Iterator[None]:
    """Write the matrix into docs/reliability.md once every cell ran."""
    yield
    if len(CELLS) == len(CASES) * len(FAULTS):
        write_part("actions", _table())


@pytest.fixture()
def services(private: PrivateServers) -> Iterator[Services]:
    built = build_services(settings_for(private.database_url, private.redis_url, "krowoc-faults:", **TIMEOUTS))
    yield built
    built.close()


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_no_change_without_its_row(
    private: PrivateServers, services: Services, case: Case, fault: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    number = len(CELLS)
    raw = redis.Redis.from_url(private.redis_url, socket_timeout=5)
    case.prepare(services, raw, number)
    before = case.state(services, raw, number)
    last_id = last_audit_id(private.database_url)
    frozen: list[int] = []
    killed: list[str] = []

    target, method = case.effect(services)
    original = getattr(target, method)

    def then_fault(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if fault == "pg-frozen-after":
            frozen.extend(private.freeze(PG))
        elif fault == "pg-killed-after":
            private.kill(PG)
            killed.append(PG)
        return result

    monkeypatch.setattr(target, method, then_fault)
    if fault == "pg-frozen-before":
        frozen.extend(private.freeze(PG))
    elif fault == "redis-frozen":
        frozen.extend(private.freeze(VALKEY))
    elif fault == "redis-killed":
        private.kill(VALKEY)
        killed.append(VALKEY)

    attempted = attempt(lambda: case.attempt(services, number))
    private.thaw(frozen)
    monkeypatch.undo()
    if killed:
        private.restart()
    services.audit.reap(now=datetime.now(UTC) + timedelta(hours=1))

    rows = audit_rows_since(private.database_url, last_id, case.name)
    # A killed Redis loses what it held (it keeps nothing on disk): nothing in it could change while it was down.
    killed_redis_state = fault == "redis-killed" and case.state_in_redis
    changed = False if killed_redis_state else case.state(services, raw, number) != before
    raw.close()
    CELLS[(case.name, fault)] = cell_text(changed=changed, rows=rows, attempted=attempted)
    check_cell(case.name, fault, changed=changed, rows=rows)


def _table() -> list[str]:
    lines = [
        "## Admin actions",
        "",
        "Each cell: whether the change happened, the audit rows the attempt left (after the reaper), the",
        "error the caller saw, and how long the attempt took.",
        "",
        "| action | " + " | ".join(FAULTS.values()) + " |",
        "| --- | " + " | ".join("---" for _ in FAULTS) + " |",
    ]
    for case in CASES:
        cells = [CELLS[(case.name, fault)] for fault in FAULTS]
        lines.append(f"| `{case.name}` | " + " | ".join(cells) + " |")
    return [*lines, ""]
