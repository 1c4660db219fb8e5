"""The Health and Audit log pages, run in-process by AppTest against real servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from streamlit.testing.v1 import AppTest

from core.audit import AuditLog
from core.bootstrap import build_services
from core.config import Settings, get_settings
from core.domain.models import Actor, AuditOutcome, AuditSource, Role
from tests.conftest import PROJECT_ROOT, test_settings

APP = str(PROJECT_ROOT / "dashboard" / "app.py")


@pytest.fixture()
def fresh_env(
    make_database: Callable[..., str], redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """Points the dashboard at a fresh, empty database of its own."""
    url = make_database()
    monkeypatch.setenv("KROWOC_DATABASE_URL", url)
    monkeypatch.setenv("KROWOC_REDIS_URL", redis_url)
    monkeypatch.setenv("KROWOC_REDIS_KEY_PREFIX", redis_prefix)
    monkeypatch.setenv("KROWOC_DEV_LOGIN", "true")
    get_settings.cache_clear()
    yield test_settings(url, redis_url, redis_prefix)
    get_settings.cache_clear()


def _open(page: str, role: Role, query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["actor"] = Actor(id=f"dev:{role.value}", role=role, display_name=role.value, dev_login=True)
    for name, value in (query or {}).items():
        at.query_params[name] = value
    at.run()
    at.switch_page(f"../pages/{page}")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_health_lists_every_dependency_with_a_status(fresh_env: Settings) -> None:
    at = _open("health.py", Role.VIEWER)
    table = at.dataframe[0].value
    by_component = dict(zip(table["Component"], table["Status"], strict=True))
    assert by_component["PostgreSQL"] in {"pass", "warn"}
    assert set(by_component) == {"PostgreSQL", "PostgreSQL replica", "Redis", "Unleash", "Prometheus"}
    assert "not configured" in table.loc[table["Component"] == "PostgreSQL replica", "Detail"].item()
    assert at.metric[0].label == "Overall"


def test_health_says_fail_when_redis_is_down_and_the_page_still_answers(
    fresh_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KROWOC_REDIS_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    at = _open("health.py", Role.OPERATOR)
    table = at.dataframe[0].value
    redis_row = table.loc[table["Component"] == "Redis"]
    assert redis_row["Status"].item() == "fail"
    assert "Error" in redis_row["Detail"].item()
    # Redis is not required: the overall state warns instead of failing.
    assert at.metric[0].value == "warn"
    assert any("orange-badge" in m.value and "warn" in m.value for m in at.markdown), [m.value for m in at.markdown]


def test_audit_log_filters_and_shows_before_and_after(fresh_env: Settings) -> None:
    services = build_services(fresh_env)
    try:
        log: AuditLog = services.audit
        staff = Actor(id="dev:zoe", role=Role.SUPPORT, source=AuditSource.DASHBOARD)
        log.record(
            actor=staff,
            action="user.change_tier",
            target_type="user",
            target_id="42",
            outcome=AuditOutcome.SUCCESS,
            before={"tier": "free"},
            after={"tier": "pro"},
            reason="upgrade paid by invoice",
        )
        log.record(actor=staff, action="user.suspend", target_type="user", target_id="7", outcome=AuditOutcome.DENIED)
    finally:
        services.close()

    at = _open("audit_log.py", Role.SUPPORT, {"actor": "dev:zoe"})
    table = at.dataframe[0].value
    assert list(table["Action"]) == ["user.suspend", "user.change_tier"]
    at.text_input[1].input("user.change_tier").run()
    table = at.dataframe[0].value
    assert list(table["Target"]) == ["user:42"]
    assert list(table["Reason"]) == ["upgrade paid by invoice"]
    assert at.query_params["action"] == "user.change_tier"


def test_audit_log_refuses_an_overlong_filter(fresh_env: Settings) -> None:
    at = _open("audit_log.py", Role.OPERATOR, {"actor": "x" * 300})
    assert any("at most 200 characters" in e.value for e in at.error)
    assert not at.dataframe


def test_viewers_have_no_audit_log_page(fresh_env: Settings) -> None:
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["actor"] = Actor(id="dev:v", role=Role.VIEWER, dev_login=True)
    at.run()
    with pytest.raises(ValueError, match="Could not find a navigation page") as refused:
        at.switch_page("../pages/audit_log.py")
    assert "health.py" in str(refused.value)
