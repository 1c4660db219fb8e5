"""In a real browser: support finds a user's failed execution, reveals its payload, fixes the account.

The dashboard runs (``streamlit run``) on a fresh seeded database of its own, because this path
changes data: a tier, a rate-limit bucket and audit records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from core.adapters.db import libpq_url
from core.domain.models import Role, Tier
from core.ratelimit import RateLimiter
from tests.support.browser import dev_log_in, running_dashboard
from tests.support.databases import SeedPlan

# Every browser test in one worker: one Chromium and one shared dashboard server for the run.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]


@pytest.fixture()
def support_stack(
    seeded_copy: Callable[[SeedPlan], str], redis_url: str, prefix: str, tmp_path: Path
) -> Iterator[dict[str, Any]]:
    """Run a dashboard on a copy of a seeded platform with its own Redis key prefix."""
    database_url = seeded_copy(SeedPlan(executions=6_000, days=2, seed=31, payload_fraction=0.5))
    settings = {"KROWOC_DATABASE_URL": database_url, "KROWOC_REDIS_URL": redis_url, "KROWOC_REDIS_KEY_PREFIX": prefix}
    with running_dashboard(settings, tmp_path / "streamlit.log") as url:
        yield {"url": url, "database_url": database_url, "prefix": prefix, "redis_url": redis_url}


def _failed_with_payload(database_url: str) -> tuple[int, str, int]:
    with psycopg.connect(libpq_url(database_url)) as conn:
        row = conn.execute(
            "SELECT u.id, u.email, e.id FROM prompt_executions e JOIN users u ON u.id = e.user_id "
            "JOIN execution_payloads p ON p.execution_id = e.id "
            "WHERE e.status = 'failed' AND u.tier = 'free' AND u.status = 'active' "
            "AND e.created_at > now() - interval '20 hours' ORDER BY e.created_at DESC LIMIT 1"
        ).fetchone()
    assert row is not None
    return int(row[0]), str(row[1]), int(row[2])


def test_support_finds_a_failed_execution_reveals_it_and_fixes_the_account(
    page: Any, support_stack: dict[str, Any], tmp_path: Path
) -> None:
    url, database_url = support_stack["url"], support_stack["database_url"]
    user_id, email, execution_id = _failed_with_payload(database_url)
    client = redis.Redis.from_url(support_stack["redis_url"])
    limiter = RateLimiter(client, support_stack["prefix"])
    for _ in range(6):
        limiter.check(user_id, Tier.FREE)

    # Log in as support and paste the user's email on the Executions page.
    dev_log_in(page, url, "grace", Role.SUPPORT)
    # A reload would start a new session (the dev login lives in it): navigate inside the app.
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Executions").click()
    page.get_by_role("heading", name="Executions").wait_for()
    page.get_by_label("User (email or id)").fill(email)
    # The search form's button: a table's toolbar also has a "Search" button once a table is drawn.
    page.get_by_test_id("stForm").get_by_role("button", name="Search", exact=True).click()
    page.wait_for_function("() => window.location.search.includes('user=')")
    page.get_by_text(f"user {user_id},").wait_for()
    page.get_by_test_id("stDataFrame").first.wait_for(state="visible")

    # Open the failed execution: its error shows, its payload is masked.
    page.get_by_label("Open execution by id").fill(str(execution_id))
    page.get_by_role("button", name="Open execution").click()
    page.get_by_role("heading", name=f"Execution {execution_id}").wait_for()
    page.get_by_test_id("stMetric").filter(has_text="Status").filter(has_text="failed").wait_for()
    page.get_by_text("Input and output are hidden.").wait_for()

    # Reveal it with a reason.
    page.get_by_label("Reason for revealing (goes into the audit log)").fill("ticket 5120: why did it fail")
    page.get_by_role("button", name="Reveal payload").click()
    page.get_by_text("Revealed for you").wait_for()
    revealed = page.get_by_test_id("stCode").first
    revealed.wait_for(state="visible")
    assert revealed.inner_text().strip().startswith("Please ")

    # The user's page: reset the rate limit, then move them to pro.
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Users").click()
    page.get_by_label("Email, id or the start of a name").fill(email)
    page.get_by_role("button", name="Find").click()
    page.get_by_role("heading", name=email, exact=False).wait_for()
    page.get_by_text("of 10 tokens", exact=False).wait_for()
    page.get_by_role("tab", name="Rate limit").click()
    page.get_by_label("Reason", exact=True).filter(visible=True).fill("retry loop, customer fixed it")
    page.get_by_role("button", name="Reset rate limit").click()
    page.get_by_text("is full again").wait_for()

    page.get_by_role("tab", name="Tier").click()
    page.get_by_test_id("stSelectbox").filter(has_text="New tier").click()
    page.get_by_role("option", name="pro", exact=True).click()
    page.get_by_label("Reason", exact=True).filter(visible=True).fill("upgrade paid, invoice 77")
    page.get_by_role("button", name="Change tier").click()
    page.get_by_text("is on the pro tier").wait_for()
    page.get_by_test_id("stMetric").filter(has_text="Tier").filter(has_text="pro").wait_for()
    page.screenshot(path=str(tmp_path / "support.png"), full_page=True)
    client.close()

    # The audit log holds all four, each with before and after.
    with psycopg.connect(libpq_url(database_url)) as conn:
        rows = conn.execute(
            "SELECT action, actor, actor_role, target_id, reason, before, after, outcome FROM audit_log ORDER BY id"
        ).fetchall()
    actions = [(r[0], r[1], r[2], r[3], r[7]) for r in rows]
    assert actions == [
        ("execution.reveal_payload", "dev:grace", "support", str(execution_id), "success"),
        # The bucket lives in Redis: the intent is recorded before the reset, then its outcome.
        ("user.reset_rate_limit", "dev:grace", "support", str(user_id), "pending"),
        ("user.reset_rate_limit", "dev:grace", "support", str(user_id), "success"),
        ("user.change_tier", "dev:grace", "support", str(user_id), "success"),
    ]
    reveal, _intent, reset, tier = rows
    assert reveal[5] == {"masked": True} and reveal[6]["masked"] is False
    # The bucket refills at 1 token/s on the free tier, so "before" depends on how long the steps took.
    assert reset[5]["burst"] == reset[6]["burst"] == 10 and reset[6]["tokens"] == 10
    assert tier[5] == {"tier": "free", "status": "active"} and tier[6] == {"tier": "pro", "status": "active"}
    assert all(r[4] for r in rows)
