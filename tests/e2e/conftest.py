"""A real Streamlit server on the seeded test database and a real Chromium driven by Playwright."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from core.config import get_settings
from core.domain.models import Role
from dashboard.auth import ROLE_SUMMARIES
from tests.conftest import PROJECT_ROOT, require_tool

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_dashboard(overrides: dict[str, str], log: Path) -> Iterator[str]:
    """Runs ``streamlit run dashboard/app.py`` on a free loopback port with these settings; yields its URL."""
    port = _free_port()
    env = dict(os.environ, KROWOC_DEV_LOGIN="true", STREAMLIT_BROWSER_GATHER_USAGE_STATS="false", **overrides)
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(PROJECT_ROOT / "dashboard" / "app.py"),
             "--server.address", "127.0.0.1", "--server.port", str(port), "--server.headless", "true"],
            cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Streamlit did not start; log:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def dashboard_url(seeded_database_url: str, redis_url: str, redis_prefix: str, tmp_path_factory: Any) -> Iterator[str]:
    """The dashboard on the seeded test database."""
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
    """A headless Debian Chromium driven by Playwright (``playwright install`` is never needed)."""
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


def dev_log_in(page: Any, url: str, name: str, role: Role | None = None) -> None:
    """Sign in through the dev login form as ``name`` (with the form's default role unless ``role``)."""
    page.goto(url)
    page.get_by_label("Your name").fill(name)
    if role is not None:
        page.get_by_test_id("stSelectbox").filter(has_text="Role").click()
        page.get_by_role("option", name=ROLE_SUMMARIES[role], exact=True).click()
    page.get_by_role("button", name="Log in").click()
    page.get_by_text(f"Signed in as {name}").wait_for()
