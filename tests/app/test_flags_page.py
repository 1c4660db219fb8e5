"""The Feature flags page, run in-process by AppTest against the run's real Unleash, PostgreSQL and Redis."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.config import Settings, get_settings
from core.domain.models import AuditOutcome, Role
from core.flags.unleash_admin import UnleashAdmin
from tests.support.apptest import open_page, run, texts
from tests.support.unleash import RunningUnleash

# With the other tests of the run's Unleash in one worker, so the run starts one unleash-server.
pytestmark = pytest.mark.xdist_group("unleash")


@pytest.fixture()
def flags_env(
    app_env: Settings,
    unleash: RunningUnleash,
    make_database: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[Settings]:
    """Points the dashboard at the run's Unleash and a fresh database of its own (changes write audit rows)."""
    monkeypatch.setenv("KROWOC_DATABASE_URL", make_database())
    monkeypatch.setenv("KROWOC_UNLEASH_URL", unleash.endpoint.api_url)
    monkeypatch.setenv("KROWOC_UNLEASH_ADMIN_TOKEN", unleash.endpoint.admin_token)
    monkeypatch.setenv("KROWOC_UNLEASH_CLIENT_TOKEN", unleash.endpoint.client_tokens["production"])
    monkeypatch.setenv("KROWOC_UNLEASH_BACKUP_DIR", str(tmp_path / "unleash-backup"))
    monkeypatch.setenv("KROWOC_UNLEASH_REFRESH_SECONDS", "1")
    get_settings.cache_clear()
    settings = get_settings()
    yield settings
    # Stop the Unleash client of the services the page built for these settings (cached by Streamlit).
    from dashboard.services import _services_for, settings_key

    _services_for(settings_key(settings), settings).flags.close()
    get_settings.cache_clear()


@pytest.fixture()
def admin(unleash: RunningUnleash) -> Iterator[UnleashAdmin]:
    client = UnleashAdmin(unleash.endpoint.api_url, unleash.endpoint.admin_token)
    yield client
    client.close()


def new_flag(admin: UnleashAdmin) -> str:
    name = f"page-{uuid.uuid4().hex[:10]}"
    admin.create_flag("default", name, "release", "made by a page test")
    for env in ("development", "production"):
        admin.add_strategy("default", name, env, "flexibleRollout", {"rollout": "100", "stickiness": "default"})
    # The listing reads what Unleash serves its clients, refreshed about once a second.
    assert admin.wait_for_clients(name, "production")
    return name


# A column only that table has, to tell the page's tables apart.
TABLES = {"flags": "Staleness", "evaluation": "Answered from", "events": "Event", "audit": "Outcome"}


def table(at: AppTest, which: str = "flags") -> pd.DataFrame:
    frames = [element.value for element in at.dataframe]
    [found] = [frame for frame in frames if isinstance(frame, pd.DataFrame) and TABLES[which] in frame.columns]
    return found


def row(frame: pd.DataFrame, name: str) -> dict[str, Any]:
    [found] = frame[frame["Flag"] == name].to_dict("records")
    return found


def fill_change(at: AppTest, *, flag: str, environment: str, action: str, reason: str, confirm: bool = True) -> None:
    at.selectbox(key="flags.change.flag").select(flag)
    at.selectbox(key="flags.change.environment").select(environment)
    at.selectbox(key="flags.change.action").select(action)
    at.text_input(key="flags.change.reason").input(reason)
    if confirm:
        at.checkbox(key="flags.change.confirm").check()
    [submit] = [button for button in at.button if button.label == "Apply change"]
    submit.click()


def test_product_sees_every_flag_in_both_environments_and_turns_one_on_in_production(
    flags_env: Settings, admin: UnleashAdmin
) -> None:
    name = new_flag(admin)
    at = open_page("flags.py", Role.PRODUCT)

    assert at.title[0].value == "Feature flags"
    frame = table(at)
    assert {"new-prompt-editor", "old-billing-page", name} <= set(frame["Flag"])
    assert {"development", "production"} <= set(frame.columns)
    assert row(frame, "new-prompt-editor")["production"] == "on 25 %"
    assert row(frame, "old-billing-page")["Staleness"] == "stale"
    assert row(frame, name)["production"] == "off"

    fill_change(at, flag=name, environment="production", action="Turn on", reason="launch from the page")
    run(at)

    assert f"{name} turned on in production." in texts(at.success)
    assert row(table(at), name)["production"] == "on"
    state, _ = admin.environment_state("default", name, "production")
    assert state.enabled
    assert row(table(at), name)["By"] == "dev:product (Krowoc Admin)"


def test_a_change_without_the_confirmation_is_not_applied(flags_env: Settings, admin: UnleashAdmin) -> None:
    name = new_flag(admin)
    at = open_page("flags.py", Role.ADMIN)

    fill_change(at, flag=name, environment="production", action="Turn on", reason="oops", confirm=False)
    run(at)

    assert "Tick the confirmation box to apply the change." in texts(at.error)
    state, _ = admin.environment_state("default", name, "production")
    assert not state.enabled


def test_a_change_without_a_reason_is_refused_with_a_message(flags_env: Settings, admin: UnleashAdmin) -> None:
    name = new_flag(admin)
    at = open_page("flags.py", Role.PRODUCT)

    fill_change(at, flag=name, environment="production", action="Set rollout %", reason="")
    run(at)

    assert any("Give a reason" in text for text in texts(at.error))
    state, _ = admin.environment_state("default", name, "production")
    assert state.rollout == 100


@pytest.mark.parametrize("role", [Role.SUPPORT, Role.VIEWER, Role.OPERATOR])
def test_other_roles_see_the_flags_but_no_way_to_change_them(flags_env: Settings, role: Role) -> None:
    at = open_page("flags.py", role)

    assert "new-prompt-editor" in set(table(at)["Flag"])
    assert not [button for button in at.button if button.label == "Apply change"]
    assert f"The {role.value} role can view flags; product and admin roles can change them." in texts(at.info)


def test_filters_narrow_the_table(flags_env: Settings) -> None:
    at = open_page("flags.py", Role.VIEWER)

    at.multiselect(key="flags.types").select("kill-switch")
    run(at)
    assert set(table(at)["Type"]) == {"kill-switch"}

    at.multiselect(key="flags.types").unselect("kill-switch")
    at.selectbox(key="flags.staleness").select("potentially stale")
    run(at)
    assert {"holiday-banner-2025", "legacy-dashboard-redirect"} <= set(table(at)["Flag"])
    assert set(table(at)["Staleness"]) == {"potentially stale"}

    at.selectbox(key="flags.staleness").select("any")
    at.text_input(key="flags.search").input("billing")
    run(at)
    assert list(table(at)["Flag"]) == ["old-billing-page"]


def test_evaluate_for_a_user_shows_what_the_client_answers(flags_env: Settings) -> None:
    at = open_page("flags.py", Role.VIEWER)

    at.text_input(key="flags.evaluate.user").input("user-42")
    at.text_area(key="flags.evaluate.properties").input("tier=pro")
    [evaluate] = [button for button in at.button if button.label == "Evaluate"]
    evaluate.click()
    run(at)

    answers = {r["Flag"]: r for r in table(at, "evaluation").to_dict("records")}
    assert "team-workspaces" in answers and "kill-google-provider" in answers
    # The client may not have polled Unleash yet on this first run: then the registered default answers.
    assert answers["kill-google-provider"]["Enabled"] is False


def test_history_shows_unleash_events_beside_our_audit_rows(flags_env: Settings, admin: UnleashAdmin) -> None:
    name = new_flag(admin)
    at = open_page("flags.py", Role.PRODUCT)
    fill_change(at, flag=name, environment="development", action="Turn on", reason="try it in dev")
    run(at)

    at.selectbox(key="flags.history.flag").select(name)
    run(at)

    events = table(at, "events")
    audit = table(at, "audit")
    assert "feature-environment-enabled" in set(events["Event"]) and "feature-created" in set(events["Event"])
    assert audit.to_dict("records")[0] | {"At": None} == {
        "At": None,
        "Actor": "dev:product",
        "Action": "flag.toggle",
        "Outcome": AuditOutcome.SUCCESS.value,
        "Environment": "development",
        "Reason": "try it in dev",
        "Detail": "",
    }


def test_with_unleash_down_the_page_shows_the_last_known_state_with_its_age_and_refuses_changes(
    flags_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = open_page("flags.py", Role.PRODUCT)
    shown_live = table(live)
    # The same dashboard once Unleash stops answering (the last known state is in Redis).
    monkeypatch.setenv("KROWOC_UNLEASH_URL", "http://127.0.0.1:9/api")
    monkeypatch.setenv("KROWOC_UNLEASH_TIMEOUT_SECONDS", "1")
    get_settings.cache_clear()

    at = open_page("flags.py", Role.PRODUCT)

    [banner] = [text for text in texts(at.warning) if text.startswith("Unleash is not answering")]
    assert "Showing the last known state from" in banner and " old. Changes are refused" in banner
    assert list(table(at)["Flag"]) == list(shown_live["Flag"])
    assert "Unleash is not answering: changes are refused until it does." in texts(at.error)
    assert not [button for button in at.button if button.label == "Apply change"]


def test_without_any_unleash_the_page_says_how_to_get_one(
    app_env: Settings, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A key prefix of its own: no last known state from the other tests.
    monkeypatch.setenv("KROWOC_REDIS_KEY_PREFIX", f"{redis_prefix}no-unleash:")
    get_settings.cache_clear()

    at = open_page("flags.py", Role.PRODUCT)

    [message] = texts(at.error)
    assert "Unleash is not configured" in message and "krowoc-admin stack up" in message
    assert not at.dataframe
