"""A real Streamlit server and a real Chromium driven by Playwright: starting the one, signing in with the other."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.domain.models import Role
from dashboard.auth import ROLE_SUMMARIES
from tests.support.network import free_port
from tests.support.settings import PROJECT_ROOT

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def running_dashboard(overrides: dict[str, str], log: Path) -> Iterator[str]:
    """Run ``streamlit run dashboard/app.py`` on a free loopback port with these settings; yield its URL."""
    port = free_port()
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


def dev_log_in(page: Any, url: str, name: str, role: Role | None = None) -> None:
    """Sign in through the dev login form as ``name`` (with the form's default role unless ``role``)."""
    page.goto(url)
    page.get_by_label("Your name").fill(name)
    if role is not None:
        page.get_by_test_id("stSelectbox").filter(has_text="Role").click()
        page.get_by_role("option", name=ROLE_SUMMARIES[role], exact=True).click()
    page.get_by_role("button", name="Log in").click()
    page.get_by_text(f"Signed in as {name}").wait_for()
