"""In a real browser: an admin opens every page of the navigation, and each one renders without an error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.domain.models import Role
from tests.support.browser import dev_log_in
from tests.support.settings import PROJECT_ROOT

# Every browser test in one worker: one Chromium and one shared dashboard server for the run.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]

# The navigation's titles by page file (dashboard/app.py), in its order.
PAGES = {
    "overview.py": "Overview",
    "errors.py": "Errors",
    "latency.py": "Latency",
    "leaderboards.py": "Leaderboards",
    "cache.py": "Cache",
    "executions.py": "Executions",
    "users.py": "Users",
    "flags.py": "Feature flags",
    "audit_log.py": "Audit log",
    "health.py": "Health",
}


def test_every_page_of_the_navigation_renders_in_a_browser(page: Any, dashboard_url: str, tmp_path: Path) -> None:
    dev_log_in(page, dashboard_url, "ada", Role.ADMIN)
    pages = {path.name for path in (PROJECT_ROOT / "pages").glob("*.py") if path.name != "__init__.py"}
    assert set(PAGES) == pages, "a page is missing here"
    for file, title in PAGES.items():
        page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True).click()
        page.get_by_role("heading", name=title, exact=True).first.wait_for()
        # Let the page finish its run before looking for errors.
        page.get_by_test_id("stStatusWidget").wait_for(state="hidden")
        assert page.get_by_test_id("stException").count() == 0, f"{title} raised an exception"
        page.screenshot(path=str(tmp_path / f"{Path(file).stem}.png"), full_page=True)
    # The last page is Health: its overall status is also a badge with a Material icon (no emoji font needed).
    overall = page.get_by_test_id("stMetricValue").first.inner_text().strip()
    assert overall in {"pass", "warn", "fail"}
    page.get_by_test_id("stMarkdownContainer").get_by_text(overall, exact=True).first.wait_for()
