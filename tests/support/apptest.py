"""Running the dashboard in-process with Streamlit's AppTest: a role signed in, one page open, no exception."""

from __future__ import annotations

import re
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from core.config import get_settings
from core.domain.models import Actor, Role
from tests.support.settings import PROJECT_ROOT

APP = PROJECT_ROOT / "dashboard" / "app.py"
PAGES = PROJECT_ROOT / "pages"
TIMEOUT = 60


def signed_in_app(role: Role, *, name: str | None = None, timeout: float = TIMEOUT) -> AppTest:
    """Return the app with a member of staff of ``role`` signed in through the dev login, not run yet."""
    at = AppTest.from_file(str(APP), default_timeout=timeout)
    who = name or role.value
    at.session_state["actor"] = Actor(id=f"dev:{who}", role=role, display_name=who, dev_login=True)
    return at


def open_page(page: str, role: Role = Role.VIEWER, params: dict[str, str] | None = None) -> AppTest:
    """Run the app signed in with a role on one page (a file under pages/), with a link's query parameters."""
    at = signed_in_app(role)
    at.switch_page(str(PAGES / page))
    at.query_params.update(params or {})
    return run(at)


def run(at: AppTest) -> AppTest:
    """Run the app once more and check that no exception reached the page."""
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def button(at: AppTest, label: str) -> Any:
    """Return the one button with this label."""
    [found] = [b for b in at.button if b.label == label]
    return found


MARKDOWN_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")


def shown(markdown: object) -> str:
    """Return the text a person reads from a markdown source: the escapes of ``dashboard.untrusted.md`` undone."""
    return MARKDOWN_ESCAPE.sub(r"\1", str(markdown))


def texts(elements: Any) -> list[str]:
    """Return the texts a person reads in these elements (alerts, captions, markdown)."""
    return [shown(element.value) for element in elements]


def errors(at: AppTest) -> list[str]:
    """Return the texts of the error messages on the page."""
    return texts(at.error)


def successes(at: AppTest) -> list[str]:
    """Return the texts of the success messages on the page."""
    return texts(at.success)


def metrics(at: AppTest) -> dict[str, str]:
    """Return the page's metrics, by label."""
    return {metric.label: metric.value for metric in at.metric}


def point_dashboard_at(monkeypatch: pytest.MonkeyPatch, database_url: str, redis_url: str, redis_prefix: str) -> None:
    """Point the in-process dashboard at a database and a key prefix (for tests that change data: their own)."""
    monkeypatch.setenv("KROWOC_DATABASE_URL", database_url)
    monkeypatch.setenv("KROWOC_REDIS_URL", redis_url)
    monkeypatch.setenv("KROWOC_REDIS_KEY_PREFIX", redis_prefix)
    monkeypatch.setenv("KROWOC_DEV_LOGIN", "true")
    get_settings.cache_clear()
