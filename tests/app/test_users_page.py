"""The Users page in-process (AppTest): find a user, see their usage and bucket, fix the account."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import text

from core.bootstrap import Services
from core.config import Settings, get_settings
from core.domain.models import Role
from core.ratelimit import RateLimiter
from tests.support.apptest import button, errors, open_page, run, successes, texts
from tests.support.databases import SeedPlan
from tests.support.settings import AUDITOR


@pytest.fixture()
def fresh(seeded_copy: Callable[[SeedPlan], str], dashboard_on: Callable[[str], Services]) -> Services:
    """Point the dashboard at a copy of a seeded platform the test may change."""
    return dashboard_on(seeded_copy(SeedPlan(executions=3_000, days=3, seed=23)))


def free_user(services: Services) -> tuple[int, str]:
    with services.db.read() as conn:
        row = conn.execute(
            text(
                "SELECT u.id, u.email FROM users u WHERE tier = 'free' AND status = 'active' "
                "AND EXISTS (SELECT 1 FROM prompt_executions e WHERE e.user_id = u.id) ORDER BY id LIMIT 1"
            )
        ).one()
    return int(row.id), str(row.email)


def metrics(at: object) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}  # type: ignore[attr-defined]


def test_an_email_opens_the_users_profile_usage_and_bucket(app_env: Settings, seeded_services: Services) -> None:
    user_id, email = free_user(seeded_services)
    with seeded_services.db.read() as conn:
        executions = conn.execute(
            text(
                "SELECT count(*) FROM prompt_executions WHERE user_id = :u AND created_at > now() - interval '30 days'"
            ),
            {"u": user_id},
        ).scalar_one()

    at = open_page("users.py", Role.SUPPORT, {"q": email})

    shown = metrics(at)
    assert shown["Tier"] == "free" and shown["Status"] == "active"
    assert shown["Executions"] == f"{executions:,}"
    assert any(email in h for h in texts(at.subheader))
    assert any("refills 1/s on the free tier" in t.value for t in at.text)
    assert at.dataframe  # recent executions


def test_a_name_prefix_lists_the_matches_to_pick_from(app_env: Settings, seeded_services: Services) -> None:
    with seeded_services.db.read() as conn:
        name = conn.execute(text("SELECT display_name FROM users ORDER BY id LIMIT 1")).scalar_one()
    prefix = name.split()[0]

    at = open_page("users.py", Role.SUPPORT, {"q": prefix.lower()})

    picks = [b for b in at.button if b.key and b.key.startswith("users.pick.")]
    assert len(picks) > 1
    picks[0].click()
    run(at)
    assert "Tier" in metrics(at)
    assert at.query_params["user"]


@pytest.mark.parametrize(
    ("query", "message"),
    [("ada@@example.com", "not an email address"), ("x", "at least two letters"), ("0", "between 1 and")],
)
def test_a_bad_search_shows_a_message(app_env: Settings, query: str, message: str) -> None:
    at = open_page("users.py", Role.SUPPORT, {"q": query})

    assert len(errors(at)) == 1 and message in errors(at)[0]
    assert not at.metric


def test_support_moves_a_user_to_pro_and_suspends_and_restores_them(fresh: Services) -> None:
    user_id, _ = free_user(fresh)
    at = open_page("users.py", Role.SUPPORT, {"user": str(user_id)})

    at.selectbox(key="users.new_tier").select("pro")
    at.text_input(key="users.tier_reason").input("paid by invoice 88")
    button(at, "Change tier").click()
    run(at)
    assert metrics(at)["Tier"] == "pro"
    assert any("pro tier" in s for s in successes(at))

    at.text_input(key="users.status_reason").input("chargeback")
    button(at, "Suspend").click()
    run(at)
    assert metrics(at)["Status"] == "suspended"
    at.text_input(key="users.status_reason").input("resolved")
    button(at, "Restore").click()
    run(at)
    assert metrics(at)["Status"] == "active"

    records = fresh.audit.search(AUDITOR, target_type="user", target_id=str(user_id))
    # The suspension drops sessions in Redis: its intent came first, and its outcome names it.
    [intent] = [r for r in records if r.outcome == "pending"]
    assert intent.action == "user.suspend" and any(r.intent_id == intent.id for r in records)
    records = [r for r in records if r.outcome != "pending"]
    assert [(r.action, r.before, r.after) for r in records] == [
        ("user.restore", {"tier": "pro", "status": "suspended"}, {"tier": "pro", "status": "active"}),
        (
            "user.suspend",
            {"tier": "pro", "status": "active"},
            {"tier": "pro", "status": "suspended", "sessions_dropped": 0},
        ),
        ("user.change_tier", {"tier": "free", "status": "active"}, {"tier": "pro", "status": "active"}),
    ]


def test_support_resets_a_users_rate_limit(fresh: Services) -> None:
    user_id, _ = free_user(fresh)
    limiter = RateLimiter(fresh.redis, fresh.settings.redis_key_prefix)
    for _ in range(8):
        limiter.check(user_id, fresh.cached_users.profile(user_id).tier)  # type: ignore[union-attr]
    at = open_page("users.py", Role.SUPPORT, {"user": str(user_id)})
    assert any("of 10 tokens" in t.value for t in at.text)

    at.text_input(key="users.ratelimit_reason").input("customer blocked by a retry loop")
    button(at, "Reset rate limit").click()
    run(at)

    assert any("full again" in s for s in successes(at))
    assert any("never used or expired: full" in t.value for t in at.text)
    [record] = fresh.audit.search(AUDITOR, action="user.reset_rate_limit", outcome="success")
    assert record.before is not None and record.before["tokens"] < 10 and record.intent_id is not None


def test_an_action_without_a_reason_changes_nothing(fresh: Services) -> None:
    user_id, _ = free_user(fresh)
    at = open_page("users.py", Role.SUPPORT, {"user": str(user_id)})

    at.selectbox(key="users.new_tier").select("enterprise")
    button(at, "Change tier").click()
    run(at)

    assert any("Give a reason" in e for e in errors(at))
    assert metrics(at)["Tier"] == "free"


def test_a_viewer_is_refused_an_action(fresh: Services) -> None:
    user_id, _ = free_user(fresh)
    at = open_page("users.py", Role.VIEWER, {"user": str(user_id)})

    at.text_input(key="users.status_reason").input("because")
    button(at, "Suspend").click()
    run(at)

    assert any("may not suspend user" in e for e in errors(at))
    assert metrics(at)["Status"] == "active"


def test_with_redis_down_a_suspension_says_so_beside_its_form_and_changes_nothing(
    fresh: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_id, _ = free_user(fresh)
    monkeypatch.setenv("KROWOC_REDIS_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    at = open_page("users.py", Role.SUPPORT, {"user": str(user_id)})
    assert any("the bucket cannot be shown" in w.value for w in at.warning)

    at.text_input(key="users.status_reason").input("chargeback")
    button(at, "Suspend").click()
    run(at)

    [error] = errors(at)
    assert "Redis did not answer" in error and "sessions could not be dropped" in error
    assert metrics(at)["Status"] == "active"
    # Shown beside its form: the forms after it are still drawn.
    assert button(at, "Reset rate limit") and button(at, "Cancel execution")
    failed, intent = fresh.audit.search(AUDITOR, action="user.suspend", target_id=str(user_id))
    assert (failed.outcome, intent.outcome, failed.intent_id) == ("failed", "pending", intent.id)


def test_a_stuck_execution_is_cancelled_from_the_users_page(fresh: Services) -> None:
    user_id, _ = free_user(fresh)
    with fresh.db.write() as conn:
        execution_id = conn.execute(
            text(
                "INSERT INTO prompt_executions (created_at, user_id, prompt_id, provider, model, status, request_id) "
                "VALUES (now(), :u, 1, 'openai', 'gpt-4o', 'running', 'req_stuck') RETURNING id"
            ),
            {"u": user_id},
        ).scalar_one()
    at = open_page("users.py", Role.SUPPORT, {"user": str(user_id)})

    at.text_input(key="users.cancel_id").input(str(execution_id))
    at.text_input(key="users.cancel_reason").input("stuck since noon")
    button(at, "Cancel execution").click()
    run(at)

    assert any("is cancelled" in s for s in successes(at))
    with fresh.db.read() as conn:
        status = conn.execute(text("SELECT status FROM prompt_executions WHERE id = :i"), {"i": execution_id})
        assert status.scalar_one() == "cancelled"
