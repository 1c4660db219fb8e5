"""In a real browser: an operator opens Cache, sees Redis's figures and flushes the leaderboard namespace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from core.cache.keys import Namespace, version_key
from core.domain.models import Role
from tests.support.browser import dev_log_in

# Every browser test in one worker: one Chromium and one shared dashboard server for the run.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]


def test_an_operator_sees_the_cache_and_flushes_a_namespace_with_a_reason(
    page: Any, dashboard_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        before = int(client.get(version_key(redis_prefix, Namespace.LEADERBOARD)) or 0)
        dev_log_in(page, dashboard_url, "olga", Role.OPERATOR)
        page.get_by_role("link", name="Cache").click()
        page.get_by_role("heading", name="Cache").first.wait_for()
        page.get_by_test_id("stMetric").filter(has_text="Eviction policy").first.wait_for()
        page.get_by_text("Keys per namespace").wait_for()

        # Let the page's run finish: a list opened while it still runs is drawn again under the pointer.
        page.get_by_test_id("stStatusWidget").wait_for(state="hidden")
        form = page.get_by_test_id("stForm").filter(has_text="What to invalidate")
        choice = form.get_by_test_id("stSelectbox").locator("input")
        wanted = "Namespace leaderboard (tier leaderboard)"
        for _ in range(3):  # a redraw can close the opened list again (about one try in three here)
            choice.click()
            try:
                page.get_by_role("option", name=wanted, exact=True).click(timeout=10_000)
            except PlaywrightTimeout:
                page.keyboard.press("Escape")
                continue
            if choice.input_value() == wanted:
                break
        expect(choice).to_have_value(wanted)
        form.get_by_label("Reason (goes into the audit log)").fill("checking the refill after a recompute")
        form.get_by_text("I understand every key").click()
        form.get_by_role("button", name="Invalidate").click()

        page.get_by_text("Invalidated leaderboard").wait_for()
        assert int(client.get(version_key(redis_prefix, Namespace.LEADERBOARD)) or 0) == before + 1
        page.screenshot(path=str(tmp_path / "cache.png"), full_page=True)
    finally:
        client.close()
