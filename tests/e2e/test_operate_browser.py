"""In a real browser: an operator opens Errors, sees the stacked rates and the drill-down links, then Latency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.domain.models import Role
from tests.support.browser import dev_log_in

# Every browser test in one worker: one Chromium and one shared dashboard server for the run.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]


def test_an_operator_reads_errors_and_latency(page: Any, dashboard_url: str, tmp_path: Path) -> None:
    dev_log_in(page, dashboard_url, "otto", Role.OPERATOR)

    page.get_by_role("link", name="Errors").click()
    page.get_by_role("heading", name="Errors").first.wait_for()
    page.get_by_text("Error rate by category").wait_for()
    page.locator(".js-plotly-plot").first.wait_for()
    page.get_by_test_id("stMetric").filter(has_text="openai").first.wait_for()
    page.get_by_text("Force a circuit breaker").wait_for()
    page.get_by_text("Prometheus is not configured").wait_for()
    assert "range=24h" in page.url
    page.screenshot(path=str(tmp_path / "errors.png"), full_page=True)

    page.get_by_role("link", name="Latency").click()
    page.get_by_role("heading", name="Latency").first.wait_for()
    page.get_by_text("Slowest executions").wait_for()
    assert page.locator(".js-plotly-plot").count() >= 1
    page.screenshot(path=str(tmp_path / "latency.png"), full_page=True)
