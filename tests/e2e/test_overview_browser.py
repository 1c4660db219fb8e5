"""In a real browser: open the dashboard, use the dev login, see the overview's figures."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from core.domain.models import TimeWindow
from tests.support.browser import dev_log_in

# Every browser test in one worker: one Chromium and one shared dashboard server for the run.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]


def test_dev_login_then_overview_shows_real_figures(
    page: Any, dashboard_url: str, seeded_database_url: str, tmp_path: Path
) -> None:
    page.goto(dashboard_url)
    page.get_by_text("Dev login — not for production").first.wait_for()
    dev_log_in(page, dashboard_url, "ada")

    page.get_by_role("heading", name="Overview").wait_for()
    metric = page.get_by_test_id("stMetric").filter(has_text="Executions").first
    metric.wait_for()
    shown = int(re.sub(r"\D", "", metric.get_by_test_id("stMetricValue").inner_text()))

    # The 24-hour default window, counted straight from the raw table.
    with psycopg.connect(seeded_database_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        (newest,) = conn.execute("SELECT now()").fetchone()  # type: ignore[misc]
        window = TimeWindow.last(timedelta(hours=24), now=newest)
        (raw,) = conn.execute(  # type: ignore[misc]
            "SELECT count(*) FROM prompt_executions WHERE created_at >= date_trunc('hour', %s::timestamptz) "
            "AND created_at < %s",
            (window.start, window.end),
        ).fetchone()
    assert shown > 0
    assert abs(shown - raw) <= max(50, raw * 0.05), (shown, raw)
    page.get_by_test_id("stPlotlyChart").first.wait_for(state="visible")
    page.get_by_text("Signed in as ada").wait_for(state="visible")
    page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)


def test_time_range_lives_in_the_url(page: Any, dashboard_url: str) -> None:
    dev_log_in(page, f"{dashboard_url}/?range=7d", "grace")
    page.get_by_role("heading", name="Overview").wait_for()
    page.get_by_test_id("stMetric").first.wait_for()
    assert "range=7d" in page.url
    page.get_by_text("30 d", exact=True).click()
    page.wait_for_function("() => window.location.search.includes('range=30d')")
    page.get_by_test_id("stMetric").first.wait_for()
    assert page.get_by_text("Dev login — not for production").first.is_visible()
