"""FlagService against the run's real Unleash, PostgreSQL (audit log) and Redis (events, last known state)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from UnleashClient import UnleashClient  # type: ignore[attr-defined]
from UnleashClient.cache import FileCache

from core.adapters.events import STREAM as ADMIN_EVENTS_STREAM
from core.bootstrap import Services, build_services
from core.domain.actions import AdminAction
from core.domain.exceptions import InvalidInput, UnleashUnavailable
from core.domain.models import AuditOutcome, Role
from core.domain.rbac import PermissionDenied
from core.flags.evaluation import FlagEvaluator
from core.flags.models import ChangeRefused, FlagToggle, RolloutChange, UnknownEnvironment, UnknownFlag
from core.flags.registry import REGISTRY
from core.flags.unleash_admin import UnleashAdmin
from tests.support.polling import eventually
from tests.support.settings import AUDITOR, actor, settings_for
from tests.support.unleash import RunningUnleash

# Every test of the run's Unleash runs in one worker, so the run starts one unleash-server.
pytestmark = pytest.mark.xdist_group("unleash")

PRODUCT = actor(Role.PRODUCT, "pm@krowoc.test")
REFRESH_SECONDS = 1
USERS = 10_000
ROLLOUT_TOLERANCE = 0.02  # 30 % ± 2 points: over 4 standard deviations for 10,000 users


@pytest.fixture()
def flag_services(
    make_database: Callable[..., str], redis_url: str, redis_prefix: str, unleash: RunningUnleash, tmp_path: Path
) -> Iterator[Services]:
    """Services on a fresh database, talking to the run's Unleash with a client backup under tmp_path."""
    settings = settings_for(
        make_database(),
        redis_url,
        redis_prefix,
        unleash_url=unleash.endpoint.api_url,
        unleash_admin_token=unleash.endpoint.admin_token,
        unleash_client_token=unleash.endpoint.client_tokens["production"],
        unleash_backup_dir=tmp_path / "unleash-backup",
        unleash_refresh_seconds=REFRESH_SECONDS,
    )
    built = build_services(settings)
    yield built
    built.close()


@pytest.fixture()
def admin(unleash: RunningUnleash) -> Iterator[UnleashAdmin]:
    client = UnleashAdmin(unleash.endpoint.api_url, unleash.endpoint.admin_token)
    yield client
    client.close()


def new_flag(admin: UnleashAdmin, *, rollout: int = 100, on_in_production: bool = False) -> str:
    """Create a flag of its own for one test, with a gradual rollout in both environments."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    admin.create_flag("default", name, "release", "made by a test")
    for env in ("development", "production"):
        admin.add_strategy(
            "default", name, env, "flexibleRollout", {"rollout": str(rollout), "stickiness": "default", "groupId": name}
        )
    if on_in_production:
        admin.set_enabled("default", name, "production", True)
    return name


def production_state(admin: UnleashAdmin, name: str) -> tuple[bool, int | None]:
    state, _ = admin.environment_state("default", name, "production")
    return state.enabled, state.rollout


def observer(unleash: RunningUnleash, folder: Path) -> UnleashClient:
    """Start a separate real Unleash client, as the platform's API would run one."""
    client = UnleashClient(
        url=unleash.endpoint.api_url,
        app_name="krowoc-api-test",
        instance_id=f"observer-{uuid.uuid4().hex[:6]}",
        refresh_interval=REFRESH_SECONDS,
        custom_headers={"Authorization": unleash.endpoint.client_tokens["production"]},
        disable_metrics=True,
        disable_registration=True,
        cache=FileCache("observer", directory=str(folder)),
    )
    client.initialize_client()
    return client


# -- listing ---------------------------------------------------------------------------------------


def test_the_listing_shows_every_seeded_flag_in_both_environments(flag_services: Services) -> None:
    listing = flag_services.flags.list_flags()

    assert listing.live and listing.problem is None
    assert {"development", "production"} <= set(listing.catalog.environments)
    flags = {flag.name: flag for flag in listing.catalog.flags}
    assert set(REGISTRY) <= set(flags)
    assert {flags[name].type for name in REGISTRY} == {
        "release",
        "experiment",
        "operational",
        "kill-switch",
        "permission",
    }
    editor = flags["new-prompt-editor"]
    assert editor.environments["development"].enabled and editor.environments["development"].rollout == 100
    assert editor.environments["production"].enabled and editor.environments["production"].rollout == 25
    assert not flags["prompt-version-diff"].environments["production"].enabled
    assert flags["old-billing-page"].stale
    assert flags["holiday-banner-2025"].potentially_stale and flags["legacy-dashboard-redirect"].potentially_stale
    assert not editor.potentially_stale
    assert editor.last_changed_at is not None and editor.last_changed_by


# -- toggling --------------------------------------------------------------------------------------


def test_a_toggle_is_seen_by_a_separate_unleash_client_within_its_refresh_interval(
    flag_services: Services, admin: UnleashAdmin, unleash: RunningUnleash, tmp_path: Path
) -> None:
    name = new_flag(admin)
    client = observer(unleash, tmp_path / "observer")
    try:
        assert eventually(lambda: name in client.feature_definitions(), timeout=10 * REFRESH_SECONDS)
        assert not client.is_enabled(name, {"userId": "42"})

        result = flag_services.flags.set_enabled(
            PRODUCT, FlagToggle(name=name, environment="production", on=True, reason="launch to everyone")
        )

        assert result.changed and result.before["enabled"] is False and result.after["enabled"] is True
        assert result.propagated  # what Unleash serves its clients had the change before the call returned
        assert production_state(admin, name) == (True, 100)
        # Polled every REFRESH_SECONDS: a few intervals cover the poll's jitter and a slow machine.
        assert eventually(lambda: client.is_enabled(name, {"userId": "42"}), timeout=10 * REFRESH_SECONDS)
    finally:
        client.destroy()
    # Unleash is outside the transaction: the intent was recorded first, and the outcome names it.
    record, intent = flag_services.audit.search(AUDITOR, target_id=name)
    assert (intent.outcome, record.intent_id) == (AuditOutcome.PENDING, intent.id)
    assert (record.actor, record.action, record.outcome) == (PRODUCT.id, AdminAction.FLAG_TOGGLE, AuditOutcome.SUCCESS)
    assert record.reason == "launch to everyone"
    assert record.after == {"environment": "production", "enabled": True, "rollout": 100, "changed": True}


def test_the_change_shows_in_the_listing_unleash_s_event_log_and_the_admin_events_stream(
    flag_services: Services, admin: UnleashAdmin, redis_prefix: str
) -> None:
    name = new_flag(admin)

    flag_services.flags.set_enabled(PRODUCT, FlagToggle(name=name, environment="production", on=True, reason="launch"))

    flag = next(f for f in flag_services.flags.list_flags().catalog.flags if f.name == name)
    assert flag.environments["production"].enabled
    assert flag.last_changed_by == f"{PRODUCT.id} (Krowoc Admin)"
    history = flag_services.flags.history(PRODUCT, name)
    assert history.events[0].type == "feature-environment-enabled"
    assert history.events[0].environment == "production"
    assert [(r.actor, r.outcome) for r in history.audit] == [
        (PRODUCT.id, AuditOutcome.SUCCESS),
        (PRODUCT.id, AuditOutcome.PENDING),
    ]
    # Who may not read the audit log sees Unleash's events without our rows.
    assert flag_services.flags.history(actor(Role.VIEWER), name).audit == []
    entries = flag_services.redis.xrevrange(f"{redis_prefix}{ADMIN_EVENTS_STREAM}", count=50)
    published = [
        json.loads(fields[b"payload"])
        for _, fields in entries
        if fields[b"kind"] == AdminAction.FLAG_TOGGLE.value.encode()
    ]
    assert {"actor": PRODUCT.id, "target_type": "feature_flag", "target_id": name} in published


def test_a_toggle_already_in_that_state_succeeds_without_a_second_change(
    flag_services: Services, admin: UnleashAdmin
) -> None:
    name = new_flag(admin, on_in_production=True)

    result = flag_services.flags.set_enabled(
        PRODUCT, FlagToggle(name=name, environment="production", on=True, reason="make sure it is on")
    )

    assert not result.changed
    events = [e.type for e in admin.events(name)]
    assert events.count("feature-environment-enabled") == 1
    [record] = flag_services.audit.search(AUDITOR, target_id=name, outcome=AuditOutcome.SUCCESS)
    assert record.after is not None and record.after["changed"] is False


def test_a_support_actor_is_refused_and_the_refusal_is_audited(flag_services: Services, admin: UnleashAdmin) -> None:
    name = new_flag(admin)

    with pytest.raises(PermissionDenied):
        flag_services.flags.set_enabled(
            actor(Role.SUPPORT), FlagToggle(name=name, environment="production", on=True, reason="please")
        )
    with pytest.raises(PermissionDenied):
        flag_services.flags.set_rollout(
            actor(Role.VIEWER), RolloutChange(name=name, environment="production", percent=50, reason="please")
        )

    assert production_state(admin, name) == (False, 100)
    records = flag_services.audit.search(AUDITOR, target_id=name)
    assert [(r.actor_role, r.outcome) for r in records] == [
        (Role.VIEWER, AuditOutcome.DENIED),
        (Role.SUPPORT, AuditOutcome.DENIED),
    ]


@pytest.mark.parametrize(
    ("flag", "environment", "error"),
    [("no-such-flag-anywhere", "production", UnknownFlag), (None, "staging", UnknownEnvironment)],
)
def test_an_unknown_flag_or_environment_is_refused_as_invalid(
    flag_services: Services, admin: UnleashAdmin, flag: str | None, environment: str, error: type[Exception]
) -> None:
    name = flag or new_flag(admin)

    with pytest.raises(error):
        flag_services.flags.set_enabled(PRODUCT, FlagToggle(name=name, environment=environment, on=True, reason="try"))

    # Only Unleash can tell the flag or environment does not exist: the intent came first.
    record, intent = flag_services.audit.search(AUDITOR, target_id=name)
    assert (record.outcome, intent.outcome, record.intent_id) == (AuditOutcome.INVALID, AuditOutcome.PENDING, intent.id)


def test_a_toggle_without_a_reason_changes_nothing(flag_services: Services, admin: UnleashAdmin) -> None:
    name = new_flag(admin)

    with pytest.raises(InvalidInput, match="reason"):
        flag_services.flags.set_enabled(PRODUCT, FlagToggle(name=name, environment="production", on=True, reason="  "))

    assert production_state(admin, name) == (False, 100)


# -- rollout ---------------------------------------------------------------------------------------


def test_a_30_percent_rollout_enables_about_30_percent_of_10000_users(
    flag_services: Services, admin: UnleashAdmin
) -> None:
    name = new_flag(admin, on_in_production=True)

    result = flag_services.flags.set_rollout(
        PRODUCT, RolloutChange(name=name, environment="production", percent=30, reason="widen the experiment slowly")
    )

    assert result.changed and result.before["rollout"] == 100 and result.after["rollout"] == 30
    assert production_state(admin, name) == (True, 30)
    evaluator = flag_services.flags.evaluator
    assert evaluator is not None
    assert eventually(lambda: evaluator.evaluate(name).known_to_client, timeout=10 * REFRESH_SECONDS)
    # The client may still hold the 100 % rollout for one poll: wait until it has the 30 %.
    assert eventually(
        lambda: sum(evaluator.evaluate(name, {"userId": str(u)}).enabled for u in range(200)) < 200,
        timeout=10 * REFRESH_SECONDS,
    )
    enabled = sum(evaluator.evaluate(name, {"userId": str(user)}).enabled for user in range(USERS))
    assert abs(enabled / USERS - 0.30) <= ROLLOUT_TOLERANCE


@pytest.mark.parametrize("percent", [-1, 101])
def test_a_rollout_outside_0_to_100_is_refused(flag_services: Services, admin: UnleashAdmin, percent: int) -> None:
    name = new_flag(admin)

    with pytest.raises(InvalidInput, match="0 to 100"):
        flag_services.flags.set_rollout(
            PRODUCT, RolloutChange(name=name, environment="production", percent=percent, reason="typo")
        )

    assert production_state(admin, name) == (False, 100)
    # Refused before anything happened: no intent, one invalid row.
    [record] = flag_services.audit.search(AUDITOR, target_id=name)
    assert record.outcome == AuditOutcome.INVALID


# -- evaluation ------------------------------------------------------------------------------------


def test_evaluate_answers_what_the_real_client_answers_and_defaults_for_unknown_flags(
    flag_services: Services, unleash: RunningUnleash
) -> None:
    evaluator = flag_services.flags.evaluator
    assert evaluator is not None
    assert eventually(lambda: "team-workspaces" in evaluator.known(), timeout=10 * REFRESH_SECONDS)

    results = {e.name: e for e in flag_services.flags.evaluate_all({"userId": "7", "properties": {}})}

    assert results["team-workspaces"].enabled and results["team-workspaces"].known_to_client
    assert not results["prompt-version-diff"].enabled
    unknown = flag_services.flags.evaluate("flag-nobody-created", {"userId": "7"})
    assert not unknown.known_to_client and unknown.enabled is False


# -- Unleash down ----------------------------------------------------------------------------------


def test_with_unleash_stopped_the_list_is_the_last_known_state_and_a_toggle_fails_cleanly(
    flag_services: Services, admin: UnleashAdmin, unleash: RunningUnleash, redis_url: str, tmp_path: Path
) -> None:
    name = new_flag(admin)
    live = flag_services.flags.list_flags()
    evaluator = flag_services.flags.evaluator
    assert evaluator is not None
    assert eventually(lambda: "team-workspaces" in evaluator.known(), timeout=10 * REFRESH_SECONDS)
    audit_before = len(flag_services.audit.latest(AUDITOR, limit=1000))

    unleash.server.down()
    try:
        listing = flag_services.flags.list_flags()
        assert not listing.live and listing.problem and "unreachable" in listing.problem
        assert listing.catalog == live.catalog
        assert listing.age_seconds() >= 0

        with pytest.raises(UnleashUnavailable):
            flag_services.flags.set_enabled(
                PRODUCT, FlagToggle(name=name, environment="production", on=True, reason="during the outage")
            )
        records = flag_services.audit.latest(AUDITOR, limit=1000)
        assert len(records) == audit_before + 2  # the intent, then its failure
        assert (records[0].target_id, records[0].outcome) == (name, AuditOutcome.FAILED)
        assert (records[1].outcome, records[0].intent_id) == (AuditOutcome.PENDING, records[1].id)
        assert "UnleashUnavailable" in (records[0].detail or "")

        # A new process (a fresh client on the same backup) still evaluates from the backup file.
        fresh = FlagEvaluator(
            unleash.endpoint.api_url,
            unleash.endpoint.client_tokens["production"],
            flag_services.settings.unleash_backup_dir or tmp_path,
            refresh_seconds=REFRESH_SECONDS,
        )
        try:
            assert fresh.evaluate("team-workspaces", {"userId": "1"}).enabled
        finally:
            fresh.close()
    finally:
        unleash.restart()
    assert production_state(admin, name) == (False, 100)


def test_another_instance_sees_the_last_known_state_from_redis(
    flag_services: Services,
    unleash: RunningUnleash,
    redis_url: str,
    redis_prefix: str,
    make_database: Callable[..., str],
) -> None:
    live = flag_services.flags.list_flags()
    # Another dashboard instance, configured with an Unleash that does not answer.
    dead = settings_for(
        make_database(),
        redis_url,
        redis_prefix,
        unleash_url="http://127.0.0.1:9/api",
        unleash_admin_token="*:*.nothing",
        unleash_timeout_seconds=1,
    )
    other = build_services(dead)
    try:
        listing = other.flags.list_flags()
    finally:
        other.close()

    assert not listing.live and listing.catalog.fetched_at == live.catalog.fetched_at
    assert [f.name for f in listing.catalog.flags] == [f.name for f in live.catalog.flags]


def test_a_change_unleash_refuses_is_a_typed_error_with_unleash_s_message(admin: UnleashAdmin) -> None:
    name = new_flag(admin)

    with pytest.raises(ChangeRefused, match=r"Unleash refused the request \(409\).*already exists"):
        admin.create_flag("default", name, "release")
