"""Fixtures of the browser tests: a real Streamlit server on the seeded test database, a real Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.config import get_settings
from tests.support.browser import CHROMIUM_ARGS, running_dashboard
from tests.support.tools import require_tool


@pytest.fixture(scope="session")
def dashboard_url(seeded_database_url: str, redis_url: str, redis_prefix: str, tmp_path_factory: Any) -> Iterator[str]:
    """Run the dashboard on the seeded test database; yield its URL."""
    log = Path(tmp_path_factory.mktemp("streamlit")) / "streamlit.log"
    settings = {
        "KROWOC_DATABASE_URL": seeded_database_url,
        "KROWOC_REDIS_URL": redis_url,
        "KROWOC_REDIS_KEY_PREFIX": redis_prefix,
    }
    with running_dashboard(settings, log) as url:
        yield url


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Launch a headless Debian Chromium driven by Playwright (``playwright install`` is never needed)."""
    chromium = get_settings().chromium_path
    require_tool(chromium.exists(), f"Chromium at {chromium}", "apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    yield tab
    context.close()
