"""What the support pages' AppTests share: a dashboard on its own seeded database, a signed-in role."""

from __future__ import annotations

from typing import Any

from streamlit.testing.v1 import AppTest

from core.domain.models import Actor, Role
from tests.conftest import PROJECT_ROOT

APP = PROJECT_ROOT / "dashboard" / "app.py"
PAGES = PROJECT_ROOT / "pages"
TIMEOUT = 60


def open_page(page: str, role: Role, params: dict[str, str] | None = None) -> AppTest:
    """Run the app signed in with a role, then open one page with a link's query parameters."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.session_state["actor"] = Actor(id=f"dev:{role.value}", role=role, display_name=role.value, dev_login=True)
    at.switch_page(str(PAGES / page))
    at.query_params.update(params or {})
    return run(at)


def run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def button(at: AppTest, label: str) -> Any:
    [found] = [b for b in at.button if b.label == label]
    return found


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def successes(at: AppTest) -> list[str]:
    return [e.value for e in at.success]


def point_dashboard_at(monkeypatch: Any, database_url: str, redis_url: str, redis_prefix: str) -> None:
    """Point the in-process dashboard at a database (for tests that change data: a fresh one)."""
    from core.config import get_settings

    monkeypatch.setenv("KROWOC_DATABASE_URL", database_url)
    monkeypatch.setenv("KROWOC_REDIS_URL", redis_url)
    monkeypatch.setenv("KROWOC_REDIS_KEY_PREFIX", redis_prefix)
    monkeypatch.setenv("KROWOC_DEV_LOGIN", "true")
    get_settings.cache_clear()
