"""The Health and Audit log pages, run in-process by AppTest against real servers."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.audit import AuditLog
from core.bootstrap import Services
from core.config import get_settings
from core.domain.actions import AdminAction
from core.domain.models import Actor, AuditOutcome, AuditSource, Role
from tests.support.apptest import open_page, run, signed_in_app


@pytest.fixture()
def fresh(make_database: Callable[..., str], dashboard_on: Callable[[str], Services]) -> Services:
    """Point the dashboard at a fresh, empty database of its own."""
    return dashboard_on(make_database())


def test_health_lists_every_dependency_with_a_status(fresh: Services) -> None:
    at = open_page("health.py", Role.OPERATOR)
    table = at.dataframe[0].value
    by_component = dict(zip(table["Component"], table["Status"], strict=True))
    assert by_component["PostgreSQL"] in {"pass", "warn"}
    assert set(by_component) == {"PostgreSQL", "PostgreSQL replica", "Redis", "Unleash", "Prometheus", "Audit log"}
    assert by_component["Audit log"] == "pass"
    assert "not configured" in table.loc[table["Component"] == "PostgreSQL replica", "Detail"].item()
    assert at.metric[0].label == "Overall"


def test_a_viewer_sees_every_status_but_no_detail(fresh: Services) -> None:
    at = open_page("health.py", Role.VIEWER)
    table = at.dataframe[0].value
    assert set(table["Status"]) <= {"pass", "warn", "fail"} and len(table) == 6
    assert set(table["Detail"]) == {"details are shown to operators and admins"}


def test_health_says_fail_when_redis_is_down_and_the_page_still_answers(
    fresh: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KROWOC_REDIS_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    at = open_page("health.py", Role.OPERATOR)
    table = at.dataframe[0].value
    redis_row = table.loc[table["Component"] == "Redis"]
    assert redis_row["Status"].item() == "fail"
    assert "Error" in redis_row["Detail"].item()
    # Redis is not required: the overall state warns instead of failing.
    assert at.metric[0].value == "warn"
    assert any("orange-badge" in m.value and "warn" in m.value for m in at.markdown), [m.value for m in at.markdown]


def test_audit_log_filters_and_shows_before_and_after(fresh: Services) -> None:
    log: AuditLog = fresh.audit
    staff = Actor(id="dev:zoe", role=Role.SUPPORT, source=AuditSource.DASHBOARD)
    log.record(
        actor=staff,
        action=AdminAction.USER_CHANGE_TIER,
        target_type="user",
        target_id="42",
        outcome=AuditOutcome.SUCCESS,
        before={"tier": "free"},
        after={"tier": "pro"},
        reason="upgrade paid by invoice",
    )
    log.record(
        actor=staff, action=AdminAction.USER_SUSPEND, target_type="user", target_id="7", outcome=AuditOutcome.DENIED
    )

    at = open_page("audit_log.py", Role.SUPPORT, {"actor": "dev:zoe"})
    table = at.dataframe[0].value
    assert list(table["Action"]) == ["user.suspend", "user.change_tier"]
    at.text_input[1].input("user.change_tier").run()
    table = at.dataframe[0].value
    assert list(table["Target"]) == ["user:42"]
    assert list(table["Reason"]) == ["upgrade paid by invoice"]
    assert at.query_params["action"] == "user.change_tier"


def test_audit_log_refuses_an_overlong_filter(fresh: Services) -> None:
    at = open_page("audit_log.py", Role.OPERATOR, {"actor": "x" * 300})
    assert any("at most 200 characters" in e.value for e in at.error)
    assert not at.dataframe


def test_viewers_have_no_audit_log_page(fresh: Services) -> None:
    at = run(signed_in_app(Role.VIEWER))
    with pytest.raises(ValueError, match="Could not find a navigation page") as refused:
        at.switch_page("../pages/audit_log.py")
    assert "health.py" in str(refused.value)
