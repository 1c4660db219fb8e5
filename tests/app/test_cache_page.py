"""The Cache page, run in-process by AppTest against the seeded database and the run's Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from streamlit.testing.v1 import AppTest

from core.bootstrap import Services
from core.cache.keys import Namespace
from core.config import Settings, get_settings
from core.domain.models import AuditOutcome, Role
from dashboard.cache import REDIS_DOWN
from tests.support.apptest import metrics, open_page, run, texts
from tests.support.settings import AUDITOR


@pytest.fixture()
def operator_page(app_env: Settings) -> AppTest:
    return open_page("cache.py", Role.OPERATOR)


def test_the_page_shows_redis_figures_our_tiers_and_a_key_sample(app_env: Settings, seeded_services: Services) -> None:
    for user_id in (1, 2, 3, 1, 2, 3):  # some lookups so the tiers have counts
        seeded_services.cached_users.profile(user_id)
    seeded_services.cache.counters.flush()

    at = open_page("cache.py", Role.VIEWER)

    assert at.title[0].value == "Cache"
    shown = metrics(at)
    assert {"Memory", "Eviction policy", "Ops / s", "Clients", "Fragmentation", "Keys"} <= set(shown)
    assert not any(REDIS_DOWN in text for text in texts(at.error))
    assert len(at.dataframe) == 3  # per tier, per namespace, key sample
    tiers = at.dataframe[0].value
    assert {"memory", "user"} <= set(tiers["tier"])
    sample = at.dataframe[2].value
    assert set(sample["namespace"]) == {ns.value for ns in Namespace}
    assert any("keys" in caption.value and "scanned" in caption.value for caption in at.caption)
    assert at.get("plotly_chart")  # hit ratio over time (and the TTL spread when sampled keys have TTLs)
    at.segmented_control(key="cache.ratio-by").set_value("series")
    run(at)
    [ratio_chart] = [json.loads(c.proto.spec) for c in at.get("plotly_chart") if "hit ratio" in c.proto.spec]
    assert {"memory / user-profile", "user / user-profile"} <= {trace["name"] for trace in ratio_chart["data"]}
    # A viewer cannot invalidate.
    assert "cache.target" not in [s.key for s in at.selectbox]


def test_an_operator_invalidates_a_namespace_with_a_reason(operator_page: AppTest, seeded_services: Services) -> None:
    before = seeded_services.cache.current_versions()[Namespace.LEADERBOARD]
    at = operator_page
    at.selectbox(key="cache.target").select("namespace:leaderboard")
    at.text_input(key="cache.reason").input("recomputed the boards")
    at.checkbox(key="cache.confirm").check()
    next(b for b in at.button if b.label == "Invalidate").click()
    run(at)

    assert any("Invalidated leaderboard" in s for s in texts(at.success))
    assert seeded_services.cache.current_versions()[Namespace.LEADERBOARD] == before + 1
    [record] = seeded_services.audit.search(AUDITOR, action="cache.invalidate_namespace", actor="dev:operator", limit=1)
    assert (record.outcome, record.reason, record.target_id) == (
        AuditOutcome.SUCCESS,
        "recomputed the boards",
        "leaderboard",
    )


def test_without_the_confirmation_or_a_reason_nothing_is_invalidated(
    operator_page: AppTest, seeded_services: Services
) -> None:
    before = seeded_services.cache.current_versions()
    at = operator_page
    at.selectbox(key="cache.target").select("tier:user")
    at.text_input(key="cache.reason").input("flush")
    next(b for b in at.button if b.label == "Invalidate").click()
    run(at)
    assert any("Tick the confirmation" in w for w in texts(at.warning))

    at.text_input(key="cache.reason").input("")
    at.checkbox(key="cache.confirm").check()
    next(b for b in at.button if b.label == "Invalidate").click()
    run(at)
    assert any("Give a reason" in e for e in texts(at.error))
    assert seeded_services.cache.current_versions() == before


def test_looking_up_a_key_masks_secrets(operator_page: AppTest, seeded_services: Services, redis_prefix: str) -> None:
    key = f"{redis_prefix}cache:{{user-profile}}:v999:secret-test"
    seeded_services.redis.set(key, '{"email": "a@b.c", "session_token": "abc123secret"}', ex=60)
    at = operator_page
    at.text_input(key="cache.lookup.key").input(key)
    next(b for b in at.button if b.label == "Look up").click()
    run(at)
    [shown] = at.json
    assert "abc123secret" not in shown.value and "a@b.c" in shown.value


@pytest.fixture()
def redis_down(app_env: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("KROWOC_REDIS_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_with_redis_down_the_page_says_so_and_the_overview_still_works(redis_down: None) -> None:
    at = open_page("cache.py", Role.OPERATOR)

    [error] = [e for e in texts(at.error) if REDIS_DOWN in e]
    assert "Every other page keeps working" in error
    assert "Memory" not in metrics(at)

    at.switch_page("../pages/overview.py")
    run(at)
    assert at.title[0].value == "Overview"
    assert "Executions" in metrics(at)


def test_a_viewer_gets_no_key_lookup_and_a_session_key_is_refused(
    app_env: Settings, seeded_services: Services, redis_prefix: str
) -> None:
    viewer = open_page("cache.py", Role.VIEWER)
    assert not [t for t in viewer.text_input if t.key == "cache.lookup.key"]
    assert any("Operators and admins look cache keys up" in c.value for c in viewer.caption)

    session_key = f"{redis_prefix}session:sid-9"
    seeded_services.redis.set(session_key, '{"ip": "10.1.2.3", "csrf": "c5rf"}', ex=60)
    at = open_page("cache.py", Role.OPERATOR)
    at.text_input(key="cache.lookup.key").input(session_key)
    next(b for b in at.button if b.label == "Look up").click()
    run(at)
    assert not at.json
    assert any("cache, statistics and rate-limit keys" in e for e in texts(at.error))
