"""The dashboard shell and the Overview page, run in-process by AppTest against the seeded database."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import text
from streamlit.testing.v1 import AppTest

from core.bootstrap import Services
from core.config import Settings, get_settings
from core.domain.models import Actor, Role, TimeWindow
from dashboard import formats
from dashboard.auth import DEV_BANNER, NO_LOGIN_MESSAGE
from queries import overview
from queries.grain import grain_for, whole_buckets
from tests.support.apptest import texts
from tests.support.settings import PROJECT_ROOT

APP = PROJECT_ROOT / "dashboard" / "app.py"
TIMEOUT = 30

RAW_TOTALS = """
WITH window_rows AS (
    SELECT * FROM prompt_executions WHERE created_at >= :start AND created_at < :end
),
ranked AS (
    SELECT latency_ms, row_number() OVER (ORDER BY latency_ms) AS position, count(*) OVER () AS n
    FROM window_rows WHERE latency_ms IS NOT NULL
)
SELECT (SELECT count(*) FROM window_rows) AS executions,
       (SELECT count(*) FROM window_rows WHERE error_category IS NOT NULL) AS errors,
       -- The two order statistics percentile_cont(0.95) interpolates between.
       (SELECT min(latency_ms) FROM ranked WHERE position = floor(0.95 * (n - 1)) + 1) AS p95_low,
       (SELECT min(latency_ms) FROM ranked WHERE position = least(n, floor(0.95 * (n - 1)) + 2)) AS p95_high
"""


@pytest.fixture()
def app(app_env: Settings) -> AppTest:
    """Return the dashboard on the seeded database, with the dev login on and nobody signed in."""
    return AppTest.from_file(str(APP), default_timeout=TIMEOUT)


@pytest.fixture()
def signed_in(app: AppTest) -> AppTest:
    """Return the dashboard with an operator signed in through the dev login."""
    app.session_state["actor"] = Actor(id="dev:ada", role=Role.OPERATOR, display_name="Ada", dev_login=True)
    return app


@pytest.fixture()
def no_dev_login(app_env: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Turn the dev login off for the same dashboard."""
    monkeypatch.setenv("KROWOC_DEV_LOGIN", "false")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in at.metric}


def shown_window(at: AppTest) -> TimeWindow:
    window = at.session_state["time_window"]
    assert isinstance(window, TimeWindow)
    return window


def figures(at: AppTest) -> list[dict[str, Any]]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def values(encoded: Any) -> list[Any]:
    """Decode a trace's data: a JSON list, or Plotly's base64 typed array."""
    if isinstance(encoded, dict):
        return np.frombuffer(base64.b64decode(encoded["bdata"]), dtype=encoded["dtype"]).tolist()
    return list(encoded)


def button(elements: Any, label: str) -> Any:
    [found] = [element for element in elements if element.label == label]
    return found


# -- login ---------------------------------------------------------------------------------------


def test_the_dev_login_form_comes_first_and_says_it_is_not_for_production(app: AppTest) -> None:
    run(app)

    assert app.text_input(key="dev_login.name").value == ""
    assert len(app.selectbox(key="dev_login.role").options) == len(Role)
    assert DEV_BANNER in texts(app.warning)
    assert DEV_BANNER in texts(app.sidebar.warning)
    assert not app.metric
    assert not figures(app)


def test_signing_in_with_the_form_opens_the_overview(app: AppTest) -> None:
    run(app)

    app.text_input(key="dev_login.name").input("Grace")
    app.selectbox(key="dev_login.role").select(Role.SUPPORT)
    button(app.button, "Log in").click()
    run(app)

    assert app.title[0].value == "Overview"
    assert {"Executions", "Error rate", "p95 latency", "Cost"} <= set(metrics(app))
    assert {"Cache hit ratio (5 min)", "Flags changed (24 h)", "Dependencies"} <= set(metrics(app))
    assert {"openai", "anthropic", "google", "mistral"} <= set(metrics(app)), "provider health is shown"
    actor = app.session_state["actor"]
    assert (actor.id, actor.role, actor.dev_login) == ("dev:Grace", Role.SUPPORT, True)
    assert "Signed in as Grace" in texts(app.sidebar.text)
    assert "Role: support" in texts(app.sidebar.caption)
    assert DEV_BANNER in texts(app.warning)
    assert DEV_BANNER in texts(app.sidebar.warning)


def test_the_form_refuses_an_empty_name(app: AppTest) -> None:
    run(app)

    app.text_input(key="dev_login.name").input("   ")
    button(app.button, "Log in").click()
    run(app)

    assert "Enter your name" in app.error[0].value
    assert "actor" not in app.session_state
    assert not app.metric


def test_logging_out_returns_to_the_form(signed_in: AppTest) -> None:
    run(signed_in)

    signed_in.sidebar.button(key="auth.logout").click()
    run(signed_in)

    assert "actor" not in signed_in.session_state
    assert signed_in.text_input(key="dev_login.name").value == ""
    assert not signed_in.metric


def test_without_dev_login_or_oidc_the_app_refuses_to_start(app: AppTest, no_dev_login: None) -> None:
    run(app)

    assert texts(app.error) == [NO_LOGIN_MESSAGE]
    assert not app.text_input
    assert not app.metric
    assert DEV_BANNER not in texts(app.warning)


def test_an_oidc_identity_listed_as_admin_signs_in_as_admin(
    app: AppTest, no_dev_login: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KROWOC_OIDC_CONFIGURED", "true")
    monkeypatch.setenv("KROWOC_ADMIN_EMAILS", "someone@krowoc.test, Boss@Krowoc.test")
    get_settings.cache_clear()
    app.user = {"is_logged_in": True, "email": "boss@krowoc.test", "name": "The Boss"}

    run(app)

    assert "Signed in as The Boss" in texts(app.sidebar.text)
    assert "Role: admin" in texts(app.sidebar.caption)
    assert DEV_BANNER not in texts(app.warning)
    assert "Executions" in metrics(app)


def test_any_other_oidc_identity_is_a_viewer(app: AppTest, no_dev_login: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KROWOC_OIDC_CONFIGURED", "true")
    monkeypatch.setenv("KROWOC_ADMIN_EMAILS", "boss@krowoc.test")
    get_settings.cache_clear()
    app.user = {"is_logged_in": True, "email": "intern@krowoc.test", "name": "Intern"}

    run(app)

    assert "Role: viewer" in texts(app.sidebar.caption)


def test_oidc_without_a_session_offers_to_log_in(
    app: AppTest, no_dev_login: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KROWOC_OIDC_CONFIGURED", "true")
    get_settings.cache_clear()
    app.user = {"is_logged_in": False}

    run(app)

    assert [button.label for button in app.button] == ["Log in"]
    assert not app.metric


# -- the overview --------------------------------------------------------------------------------


def test_the_metrics_match_the_raw_executions_and_the_charts_are_drawn(
    signed_in: AppTest, seeded_services: Services
) -> None:
    run(signed_in)

    window = shown_window(signed_in)
    assert window.span == timedelta(hours=24)
    grain = grain_for(window)
    span = whole_buckets(window, grain)
    with seeded_services.db.read() as conn:
        raw = conn.execute(text(RAW_TOTALS), {"start": span.start, "end": span.end}).one()
        totals = overview.execution_totals(conn, window)
    assert raw.executions > 0
    shown = metrics(signed_in)
    assert shown["Executions"] == formats.count(raw.executions)
    assert shown["Error rate"] == formats.share(raw.errors / raw.executions)
    # Within the histogram's bound of the exact order statistics around the p95 rank (in a sparse
    # tail those two can sit in different buckets, so percentile_cont's interpolation may not).
    assert totals.p95_latency_ms is not None
    assert raw.p95_low / 1.0198 <= totals.p95_latency_ms <= raw.p95_high * 1.0198
    assert shown["p95 latency"] == formats.duration_ms(totals.p95_latency_ms)
    assert shown["Cost"] == formats.usd(totals.cost_usd)

    [figure] = figures(signed_in)
    traces = figure["data"]
    assert [trace["name"] for trace in traces] == ["Executions / min", "Error rate", "p95 latency"]
    buckets = int(span.span / grain.step)
    assert all(len(values(trace["x"])) == len(values(trace["y"])) == buckets for trace in traces)
    assert sum(values(traces[0]["y"])) > 0


def test_range_7d_in_the_link_shows_seven_days(signed_in: AppTest) -> None:
    signed_in.query_params["range"] = "7d"

    run(signed_in)

    assert shown_window(signed_in).span == timedelta(days=7)
    assert signed_in.segmented_control(key="time_window.range").value == "7d"
    assert signed_in.query_params["range"] == "7d"
    assert not signed_in.warning or DEV_BANNER in texts(signed_in.warning)


def test_choosing_a_range_puts_it_in_the_link(signed_in: AppTest) -> None:
    run(signed_in)
    assert signed_in.query_params["range"] == "24h"

    signed_in.segmented_control(key="time_window.range").set_value("1h")
    run(signed_in)

    assert shown_window(signed_in).span == timedelta(hours=1)
    assert signed_in.query_params["range"] == "1h"
    [figure] = figures(signed_in)
    assert len(values(figure["data"][0]["x"])) in (60, 61)  # whole minutes around the hour


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"range": "fortnight"}, "fortnight"),
        ({"range": "custom", "from": "yesterday", "to": "today"}, "yesterday"),
        ({"from": "2026-11-20T10:00Z"}, "both `from` and `to`"),
    ],
)
def test_a_bad_range_in_the_link_warns_and_shows_the_last_24_hours(
    signed_in: AppTest, params: dict[str, str], named: str
) -> None:
    signed_in.query_params.update(params)

    run(signed_in)

    problems = [warning for warning in texts(signed_in.warning) if warning != DEV_BANNER]
    assert len(problems) == 1 and named in problems[0]
    assert shown_window(signed_in).span == timedelta(hours=24)
    assert signed_in.query_params == {"range": "24h"}
    assert "Executions" in metrics(signed_in)


def test_a_custom_range_in_the_link_is_shown(signed_in: AppTest) -> None:
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    start = end - timedelta(days=3)
    signed_in.query_params.update(
        {"range": "custom", "from": f"{start:%Y-%m-%dT%H:%M}Z", "to": f"{end:%Y-%m-%dT%H:%M}Z"}
    )

    run(signed_in)

    assert shown_window(signed_in) == TimeWindow(start=start, end=end)
    assert signed_in.segmented_control(key="time_window.range").value == "custom"
    assert signed_in.datetime_input(key="time_window.from").value == start.replace(tzinfo=None)
    assert "Executions" in metrics(signed_in)


def test_a_reversed_custom_range_is_refused_and_nothing_is_queried(signed_in: AppTest) -> None:
    signed_in.query_params.update({"range": "custom", "from": "2026-11-20T10:00Z", "to": "2026-11-19T10:00Z"})

    run(signed_in)

    assert len(signed_in.error) == 1
    assert "must be after its start" in signed_in.error[0].value
    assert "time_window" not in signed_in.session_state
    assert not signed_in.metric
    assert not figures(signed_in)


def test_a_range_without_executions_says_so(signed_in: AppTest) -> None:
    signed_in.query_params.update({"range": "custom", "from": "2020-01-01T00:00Z", "to": "2020-01-02T00:00Z"})

    run(signed_in)

    assert texts(signed_in.info) == ["No executions in this range."]
    assert not {"Executions", "Error rate", "p95 latency", "Cost"} & set(metrics(signed_in))
    assert not figures(signed_in)


def test_an_unreachable_database_shows_an_error_not_a_traceback(
    signed_in: AppTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KROWOC_DATABASE_URL", "postgresql://postgres@127.0.0.1:9/krowoc")
    get_settings.cache_clear()

    run(signed_in)

    assert len(signed_in.error) == 1
    assert "PostgreSQL is unreachable" in signed_in.error[0].value
    assert not signed_in.metric


def test_switching_to_a_custom_range_starts_from_the_range_shown(signed_in: AppTest) -> None:
    signed_in.query_params["range"] = "7d"
    run(signed_in)
    seven_days = shown_window(signed_in)

    signed_in.segmented_control(key="time_window.range").set_value("custom")
    run(signed_in)

    start = seven_days.start.replace(second=0)
    end = seven_days.end.replace(second=0)
    assert shown_window(signed_in) == TimeWindow(start=start, end=end)
    assert signed_in.query_params == {
        "range": "custom",
        "from": f"{start:%Y-%m-%dT%H:%M}Z",
        "to": f"{end:%Y-%m-%dT%H:%M}Z",
    }

    signed_in.datetime_input(key="time_window.from").set_value(end.replace(tzinfo=None) - timedelta(hours=2))
    run(signed_in)

    assert shown_window(signed_in).span == timedelta(hours=2)
    assert signed_in.query_params["from"] == f"{end - timedelta(hours=2):%Y-%m-%dT%H:%M}Z"
    assert "Executions" in metrics(signed_in)


def test_picking_an_end_before_the_start_is_refused_and_nothing_is_queried(signed_in: AppTest) -> None:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=3)
    end = start + timedelta(days=1)
    signed_in.query_params.update({"from": f"{start:%Y-%m-%dT%H:%M}Z", "to": f"{end:%Y-%m-%dT%H:%M}Z"})
    run(signed_in)
    assert "Executions" in metrics(signed_in)

    before_start = start - timedelta(days=1)
    signed_in.datetime_input(key="time_window.to").set_value(before_start.replace(tzinfo=None))
    run(signed_in)

    assert texts(signed_in.error) == [
        f"The end of the time range ({before_start:%Y-%m-%d %H:%M} UTC) must be after its start "
        f"({start:%Y-%m-%d %H:%M} UTC): change From or To."
    ]
    assert not signed_in.metric
    assert not figures(signed_in)
    assert signed_in.query_params["to"] == f"{before_start:%Y-%m-%dT%H:%M}Z"
