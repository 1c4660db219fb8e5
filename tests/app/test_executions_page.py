"""The Executions page in-process (AppTest): search from a link, page, open one, reveal, export."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from core.bootstrap import Services
from core.config import Settings
from core.domain.models import Role
from dashboard import executions
from tests.support.apptest import button, errors, open_page, run
from tests.support.databases import SeedPlan
from tests.support.settings import AUDITOR


@pytest.fixture()
def fresh(seeded_copy: Callable[[SeedPlan], str], dashboard_on: Callable[[str], Services]) -> Services:
    """Point the dashboard at a copy of a seeded platform the test may change."""
    return dashboard_on(seeded_copy(SeedPlan(executions=3_000, days=3, seed=21, payload_fraction=0.5)))


def busy_user(services: Services) -> tuple[int, str]:
    with services.db.read() as conn:
        row = conn.execute(
            text(
                "SELECT u.id, u.email FROM users u JOIN prompt_executions e ON e.user_id = u.id "
                "WHERE e.created_at > now() - interval '24 hours' GROUP BY u.id ORDER BY count(*) DESC, u.id LIMIT 1"
            )
        ).one()
    return int(row.id), str(row.email)


def results(at: Any) -> Any:
    frames = [d.value for d in at.dataframe]
    assert frames, "no table shown"
    return frames[-1]


def test_a_pasted_email_shows_only_that_users_executions(app_env: Settings, seeded_services: Services) -> None:
    user_id, email = busy_user(seeded_services)

    at = open_page("executions.py", Role.SUPPORT, {"user": email.upper(), "range": "7d"})

    frame = results(at)
    assert len(frame) > 0 and set(frame["user_id"]) == {user_id}
    assert at.text_input(key="executions.user").value == email.upper()
    assert any(f"user {user_id}" in c.value for c in at.caption)


def test_the_errors_pages_drill_down_lands_with_its_filters_set(app_env: Settings, seeded_services: Services) -> None:
    with seeded_services.db.read() as conn:
        start, end = conn.execute(
            text("SELECT min(created_at), max(created_at) FROM prompt_executions WHERE error_category IS NOT NULL")
        ).one()
    params = {
        "category": "provider_rate_limited",
        "provider": "anthropic",
        "status": "failed",
        "from": f"{start:%Y-%m-%dT%H:%M}Z",
        "to": f"{end + timedelta(minutes=1):%Y-%m-%dT%H:%M}Z",
    }

    at = open_page("executions.py", Role.SUPPORT, params)

    frame = results(at)
    assert len(frame) > 0
    assert set(frame["error_category"]) == {"provider_rate_limited"} and set(frame["provider"]) == {"anthropic"}
    assert at.selectbox(key="executions.category").value == "provider_rate_limited"
    assert at.selectbox(key="executions.status").value == "failed"
    assert at.text_input(key="executions.provider").value == "anthropic"
    assert at.segmented_control(key="time_window.range").value == "custom"


def test_next_and_previous_pages_neither_skip_nor_repeat(app_env: Settings, seeded_services: Services) -> None:
    at = open_page("executions.py", Role.SUPPORT, {"range": "7d"})
    first = list(results(at)["id"])

    button(at, "Next page").click()
    run(at)
    second = list(results(at)["id"])
    button(at, "Previous page").click()
    run(at)

    assert len(first) == len(second) == 50
    assert not set(first) & set(second)
    assert min(first) > max(second)  # newest first: ids follow creation here
    assert list(results(at)["id"]) == first


def test_the_search_form_writes_its_filters_into_the_link(app_env: Settings, seeded_services: Services) -> None:
    user_id, _ = busy_user(seeded_services)
    at = open_page("executions.py", Role.SUPPORT, {"range": "24h"})

    at.text_input(key="executions.user").input(str(user_id))
    at.selectbox(key="executions.sort").select("latency")
    button(at, "Search").click()
    run(at)

    assert at.query_params["user"] == [str(user_id)] or at.query_params["user"] == str(user_id)
    frame = results(at)
    assert set(frame["user_id"]) == {user_id}
    assert list(frame["latency_ms"].fillna(-1)) == sorted(frame["latency_ms"].fillna(-1), reverse=True)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"category": "nope"}, "Unknown error category"),
        ({"user": "nobody@nowhere.test"}, "No user has the email nobody@nowhere.test"),
        ({"user": "ada@@x"}, "not an email address"),
        ({"provider": "'; DROP TABLE users; --"}, "not a provider name"),
        ({"execution": "12abc"}, "must be a whole number"),
        ({"range": "custom", "from": "2026-11-20T10:00Z", "to": "2026-11-19T10:00Z"}, "must be after its start"),
    ],
)
def test_a_bad_link_shows_a_message_and_no_results(app_env: Settings, params: dict[str, str], message: str) -> None:
    at = open_page("executions.py", Role.SUPPORT, params)

    assert len(errors(at)) == 1 and message in errors(at)[0]
    assert not at.dataframe


def failed_with_payload(services: Services) -> int:
    with services.db.read() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT e.id FROM prompt_executions e JOIN execution_payloads p ON p.execution_id = e.id "
                    "WHERE e.status = 'failed' ORDER BY e.id LIMIT 1"
                )
            ).scalar_one()
        )


def test_opening_a_failed_execution_shows_it_with_its_payload_masked(
    app_env: Settings, seeded_services: Services
) -> None:
    execution_id = failed_with_payload(seeded_services)

    at = open_page("executions.py", Role.SUPPORT, {"execution": str(execution_id)})

    labels = {m.label: m.value for m in at.metric}
    assert labels["Status"] == "failed"
    assert {"Latency", "TTFB", "Tokens in / out", "Cost"} <= set(labels)
    assert any(h.value == f"Execution {execution_id}" for h in at.subheader)
    assert len(errors(at)) == 1  # the execution's own error category, code and message
    assert not at.code  # the payload is hidden
    assert any("hidden" in t.value for t in at.text)


def test_support_reveals_a_payload_with_a_reason(fresh: Services) -> None:
    execution_id = failed_with_payload(fresh)
    at = open_page("executions.py", Role.SUPPORT, {"execution": str(execution_id)})

    button(at, "Reveal payload").click()
    run(at)
    assert any("reason" in e for e in errors(at))
    assert not at.code

    at.text_input(key="executions.reveal_reason").input("ticket 4711")
    button(at, "Reveal payload").click()
    run(at)

    assert at.code and at.code[0].value.startswith("Please ")
    outcomes = [(r.action, r.outcome, r.reason) for r in fresh.audit.latest(AUDITOR, limit=2)]
    assert outcomes == [
        ("execution.reveal_payload", "success", "ticket 4711"),
        ("execution.reveal_payload", "invalid", None),
    ]


def test_a_viewer_cannot_reveal_a_payload(fresh: Services) -> None:
    execution_id = failed_with_payload(fresh)
    at = open_page("executions.py", Role.VIEWER, {"execution": str(execution_id)})

    at.text_input(key="executions.reveal_reason").input("curious")
    button(at, "Reveal payload").click()
    run(at)

    assert any("may not reveal payload" in e for e in errors(at))
    assert not at.code
    assert fresh.audit.latest(AUDITOR)[0].outcome == "denied"


def test_the_export_writes_every_matching_execution(fresh: Services) -> None:
    at = open_page("executions.py", Role.SUPPORT, {"range": "7d", "status": "succeeded"})

    button(at, "Prepare CSV").click()
    run(at)

    path = Path(at.session_state["executions.export_path"])
    with fresh.db.read() as conn:
        expected = conn.execute(text("SELECT count(*) FROM prompt_executions WHERE status = 'succeeded'")).scalar_one()
    written = path.read_text()
    rows = list(csv.DictReader(io.StringIO(written)))
    assert len(rows) == expected > 0 and {r["status"] for r in rows} == {"succeeded"}
    assert any(b.label == "Download CSV" for b in at.get("download_button"))
    [row] = [r for r in fresh.audit.latest(AUDITOR, limit=2) if r.outcome == "success"]
    assert row.action == "executions.export" and row.after and row.after["rows"] == expected
    # The download reads the file once and leaves nothing on the server.
    with executions.export_reader(path)() as handle:
        assert not path.exists()
        assert handle.read().decode() == written


def test_only_support_and_admins_can_export(fresh: Services) -> None:
    for role in (Role.VIEWER, Role.OPERATOR, Role.PRODUCT):
        at = open_page("executions.py", role, {"range": "7d"})
        assert not [b for b in at.button if b.label == "Prepare CSV"]
        assert any("Support and admins export executions" in c.value for c in at.caption)


def test_the_sweep_deletes_exports_of_ended_sessions_and_old_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(executions, "EXPORT_DIR", tmp_path)
    fresh_file = tmp_path / "executions-live--a.csv"
    old_file = tmp_path / "executions-live--b.csv"
    fresh_file.write_text("id\n")
    old_file.write_text("id\n")
    os.utime(old_file, (0, 0))
    assert executions.sweep_exports() == 1
    assert fresh_file.exists() and not old_file.exists()
