"""Leaderboards: the ranking rule, deterministic ties, snapshots, the cache tier, the CLI and permissions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text

from cli import main as cli
from cli.environment import os_user
from core.bootstrap import Services, build_services
from core.config import get_settings
from core.domain.models import Actor, Role
from core.domain.rbac import PermissionDenied
from core.leaderboards import MIN_EXECUTIONS, TOP_N, LeaderboardRecompute, Subject, Window, rule_for
from tests.support.databases import SeedPlan
from tests.support.settings import AUDITOR, actor, settings_for

RAW_RANKING = """
SELECT {column} AS subject_id, round(avg(score), 4) AS avg_score, count(*) AS executions
FROM prompt_executions
WHERE score IS NOT NULL AND created_at >= :since AND created_at < :at
GROUP BY 1 HAVING count(*) >= :minimum
"""


@pytest.fixture()
def seeded_fresh(seeded_copy: Callable[[SeedPlan], str], redis_url: str, redis_prefix: str) -> Iterator[Services]:
    """Services on a copy of a small seeded platform (seeded once per run) that the test may change."""
    url = seeded_copy(SeedPlan(executions=20_000, days=10, seed=3))
    built = build_services(settings_for(url, redis_url, redis_prefix))
    yield built
    built.close()


@pytest.fixture()
def empty(services: Services) -> Services:
    return services


def raw_ranking(services: Services, subject: Subject, window: Window, at: datetime) -> list[tuple[int, Decimal, int]]:
    since = (
        datetime(1970, 1, 1, tzinfo=UTC)
        if window is Window.ALL
        else at - (timedelta(days=1) if window is Window.DAY else timedelta(days=7))
    )
    column = "user_id" if subject is Subject.USER else "prompt_id"
    with services.db.read() as conn:
        rows = conn.execute(
            text(RAW_RANKING.format(column=column)), {"since": since, "at": at, "minimum": MIN_EXECUTIONS[window]}
        ).all()
    ranked = sorted(rows, key=lambda r: (-r.avg_score, -r.executions, r.subject_id))
    return [(r.subject_id, r.avg_score, r.executions) for r in ranked[:TOP_N]]


@pytest.mark.parametrize("window", list(Window))
@pytest.mark.parametrize("subject", list(Subject))
def test_a_refresh_ranks_by_average_score_with_the_minimum(
    seeded_fresh: Services, operator_actor: Actor, subject: Subject, window: Window
) -> None:
    report = seeded_fresh.leaderboards.refresh(operator_actor, LeaderboardRecompute(reason="test"))

    board = seeded_fresh.leaderboards.from_table(subject, window, limit=TOP_N)
    expected = raw_ranking(seeded_fresh, subject, window, report.computed_at)
    assert board is not None and expected
    assert board.computed_at == report.computed_at and board.min_executions == MIN_EXECUTIONS[window]
    assert [(r.subject_id, r.avg_score, r.executions) for r in board.rows] == expected
    assert [r.rank for r in board.rows] == list(range(1, len(expected) + 1))
    assert all(r.executions >= MIN_EXECUTIONS[window] for r in board.rows)
    assert all(r.name and not r.name.startswith("#") for r in board.rows)
    assert str(MIN_EXECUTIONS[window]) in rule_for(window)


def test_ties_are_broken_by_more_executions_then_the_lower_id(empty: Services, operator_actor: Actor) -> None:
    now = datetime.now(UTC)
    # Users 1..4 average 0.8; user 3 has more scored executions; 2 and 4 tie on both: the lower id wins.
    plan = {1: [0.8] * 6, 2: [0.7, 0.9] * 3, 3: [0.8] * 8, 4: [0.6, 1.0] * 3, 5: [0.95] * 4}
    with empty.db.write() as conn:
        conn.execute(
            text(
                "INSERT INTO users (id, email, display_name, tier) SELECT g, 'u' || g || '@x.test', 'U' || g, "
                "'free' FROM generate_series(1, 5) g"
            )
        )
        for user_id, scores in plan.items():
            for i, score in enumerate(scores):
                conn.execute(
                    text(
                        "INSERT INTO prompt_executions (created_at, user_id, prompt_id, provider, model, status, "
                        "score, request_id) VALUES (:at, :u, 1, 'openai', 'gpt-4o', 'succeeded', :s, 'r')"
                    ),
                    {"at": now - timedelta(minutes=10 + i), "u": user_id, "s": score},
                )

    empty.leaderboards.refresh(operator_actor, now=now)

    board = empty.leaderboards.from_table(Subject.USER, Window.DAY)
    assert board is not None
    # User 5 has 4 scored executions, under the day's minimum of 5.
    assert [(r.subject_id, r.avg_score, r.executions) for r in board.rows] == [
        (3, Decimal("0.8000"), 8),
        (1, Decimal("0.8000"), 6),
        (2, Decimal("0.8000"), 6),
        (4, Decimal("0.8000"), 6),
    ]
    assert board.rows[0].name == "u3@x.test"


def test_reads_go_through_the_cache_and_a_refresh_replaces_them(seeded_fresh: Services, operator_actor: Actor) -> None:
    assert seeded_fresh.leaderboards.top(Subject.PROMPT, Window.WEEK) is None
    first = seeded_fresh.leaderboards.refresh(operator_actor)
    cached = seeded_fresh.leaderboards.top(Subject.PROMPT, Window.WEEK)
    assert cached is not None and cached.computed_at == first.computed_at
    assert cached == seeded_fresh.leaderboards.from_table(Subject.PROMPT, Window.WEEK)

    second = seeded_fresh.leaderboards.refresh(operator_actor, now=first.computed_at + timedelta(minutes=10))

    again = seeded_fresh.leaderboards.top(Subject.PROMPT, Window.WEEK)
    assert again is not None and again.computed_at == second.computed_at


def test_the_refresh_is_audited_and_needs_the_operator_role(seeded_fresh: Services, operator_actor: Actor) -> None:
    with pytest.raises(PermissionDenied):
        seeded_fresh.leaderboards.refresh(actor(Role.SUPPORT), LeaderboardRecompute(reason="please"))
    report = seeded_fresh.leaderboards.refresh(operator_actor, LeaderboardRecompute(reason="after the incident"))

    denied, done = seeded_fresh.audit.search(AUDITOR, action="leaderboards.recompute")[::-1]
    assert denied.outcome == "denied" and denied.actor_role == Role.SUPPORT
    assert done.outcome == "success" and done.reason == "after the incident"
    assert done.before == {"computed_at": None}
    assert done.after is not None and done.after["rows"] == report.rows
    with seeded_fresh.db.read() as conn:
        count = conn.execute(text("SELECT count(*) FROM leaderboard_snapshots")).scalar_one()
    assert count == sum(report.rows.values()) > 0


def test_old_snapshots_are_pruned_but_the_newest_kept(seeded_fresh: Services, operator_actor: Actor) -> None:
    now = datetime.now(UTC)
    seeded_fresh.leaderboards.refresh(operator_actor, now=now - timedelta(days=9))
    seeded_fresh.leaderboards.refresh(operator_actor, now=now)

    with seeded_fresh.db.read() as conn:
        stamps = conn.execute(text("SELECT DISTINCT computed_at FROM leaderboard_snapshots")).scalars().all()
    assert stamps == [now]


def test_the_command_line_refresh_writes_snapshots_and_an_audit_row(
    seeded_fresh: Services, monkeypatch: pytest.MonkeyPatch, capsys: Any, redis_url: str, redis_prefix: str
) -> None:
    monkeypatch.setenv("KROWOC_DATABASE_URL", seeded_fresh.settings.database_url or "")
    monkeypatch.setenv("KROWOC_REDIS_URL", redis_url)
    monkeypatch.setenv("KROWOC_REDIS_KEY_PREFIX", redis_prefix)
    get_settings.cache_clear()
    try:
        code = cli.main(["leaderboards", "refresh", "--actor", "cron"])
    finally:
        get_settings.cache_clear()

    assert code == 0
    assert "Leaderboards computed at" in capsys.readouterr().out
    [row] = seeded_fresh.audit.search(AUDITOR, action="leaderboards.recompute")
    assert (row.actor, row.source, row.reason) == (f"system:{os_user()}:cron", "cli", "scheduled refresh")
    assert seeded_fresh.leaderboards.from_table(Subject.USER, Window.ALL) is not None
