"""The audit log and the wrapper every admin action runs in, against real PostgreSQL and Redis."""

from __future__ import annotations

import json
import uuid
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Row, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError

from core.adapters.events import STREAM as ADMIN_EVENTS_STREAM
from core.adapters.tables import AuditLogRow, UserRow
from core.adapters.telemetry import request_id_var
from core.audit import AuditedAction
from core.bootstrap import Services
from core.domain.exceptions import InvalidInput
from core.domain.models import Actor, AuditOutcome, AuditSource, Role
from core.domain.rbac import Permission, PermissionDenied
from tests.support.settings import AUDITOR, actor


def _add_user(
    services: Services, *, user_id: int, who: Actor, reason: str | None = "new account"
) -> AbstractContextManager[AuditedAction]:
    """Open the audited action the tests run their changes in."""
    return services.audit.action(
        who,
        "user.change_tier",
        permission=Permission.CHANGE_USER_TIER,
        target_type="user",
        target_id=str(user_id),
        reason=reason,
    )


def _user_count(services: Services, email: str) -> int:
    with services.db.write() as conn:
        return int(conn.execute(select(func.count()).where(UserRow.email == email)).scalar_one())


def _audit_rows(services: Services) -> list[Row[Any]]:
    with services.db.write() as conn:
        return list(conn.execute(select(AuditLogRow.__table__).order_by(AuditLogRow.id)).all())


def test_success_writes_one_row_with_the_change(services: Services, support_actor: Actor) -> None:
    with _add_user(services, user_id=1, who=support_actor) as action:
        action.before = None
        action.conn.execute(insert(UserRow).values(id=1, email="ada@example.com", display_name="Ada", tier="free"))
        action.after = {"tier": "free", "status": "active"}

    assert _user_count(services, "ada@example.com") == 1
    assert len(_audit_rows(services)) == 1
    with services.db.write() as conn:
        # The same transaction wrote both rows: they carry the same creating transaction id.
        user_xmin = conn.execute(text("SELECT xmin::text FROM users WHERE id = 1")).scalar_one()
        audit_xmin = conn.execute(text("SELECT xmin::text FROM audit_log")).scalar_one()
    assert user_xmin == audit_xmin
    (record,) = services.audit.latest(AUDITOR)
    assert record.outcome is AuditOutcome.SUCCESS
    assert (record.actor, record.actor_role, record.source) == (
        "support@krowoc.test",
        Role.SUPPORT,
        AuditSource.CLI,
    )
    assert (record.action, record.target_type, record.target_id) == ("user.change_tier", "user", "1")
    assert record.after == {"tier": "free", "status": "active"}
    assert record.reason == "new account"


def test_a_failing_body_leaves_no_change_and_a_failed_row(services: Services, support_actor: Actor) -> None:
    with pytest.raises(RuntimeError, match="provider exploded"):  # noqa: SIM117
        with _add_user(services, user_id=2, who=support_actor) as action:
            action.before = {"tier": "free"}
            action.conn.execute(insert(UserRow).values(id=2, email="bob@example.com", display_name="Bob", tier="pro"))
            raise RuntimeError("provider exploded")

    assert _user_count(services, "bob@example.com") == 0
    outcomes = [r.outcome for r in _audit_rows(services)]
    assert outcomes == ["failed"]
    (record,) = services.audit.latest(AUDITOR)
    assert record.detail == "RuntimeError: provider exploded"
    assert record.before == {"tier": "free"}
    assert record.reason == "new account"


def test_a_database_error_in_the_body_is_recorded_as_failed(services: Services, support_actor: Actor) -> None:
    with pytest.raises(DBAPIError):  # noqa: SIM117
        with _add_user(services, user_id=3, who=support_actor) as action:
            action.conn.execute(insert(UserRow).values(id=3, email="x@example.com", display_name="X", tier="platinum"))
    assert [r.outcome for r in _audit_rows(services)] == ["failed"]
    assert _user_count(services, "x@example.com") == 0


def test_denied_actor_changes_nothing_and_is_recorded(services: Services) -> None:
    viewer = actor(Role.VIEWER)
    ran = False
    with pytest.raises(PermissionDenied, match="viewer role may not change user tier"):  # noqa: SIM117
        with _add_user(services, user_id=4, who=viewer):
            ran = True
    assert not ran
    (record,) = services.audit.latest(AUDITOR)
    assert record.outcome is AuditOutcome.DENIED
    assert record.actor == "viewer@krowoc.test"
    assert record.actor_role is Role.VIEWER
    assert record.reason == "new account"
    assert len(_audit_rows(services)) == 1


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_missing_reason_is_invalid_and_recorded(services: Services, support_actor: Actor, reason: str | None) -> None:
    ran = False
    with pytest.raises(InvalidInput, match="Give a reason"):  # noqa: SIM117
        with _add_user(services, user_id=5, who=support_actor, reason=reason):
            ran = True
    assert not ran
    (record,) = services.audit.latest(AUDITOR)
    assert (record.outcome, record.detail, record.reason) == (
        AuditOutcome.INVALID,
        "Give a reason for this change; it goes into the audit log.",
        None,
    )


def test_too_long_reason_is_invalid_and_recorded(services: Services, support_actor: Actor) -> None:
    with pytest.raises(InvalidInput, match="at most 1,000 characters"):  # noqa: SIM117
        with _add_user(services, user_id=6, who=support_actor, reason="x" * 1001):
            pass
    (record,) = services.audit.latest(AUDITOR)
    assert (record.outcome, record.detail) == (AuditOutcome.INVALID, "The reason may be at most 1,000 characters.")
    # Exactly 1,000 characters is fine.
    with _add_user(services, user_id=6, who=support_actor, reason="y" * 1000):
        pass
    assert services.audit.latest(AUDITOR)[0].outcome is AuditOutcome.SUCCESS


def test_invalid_input_raised_by_the_body_is_recorded_as_invalid(services: Services, support_actor: Actor) -> None:
    with pytest.raises(InvalidInput, match="no such tier"):  # noqa: SIM117
        with _add_user(services, user_id=7, who=support_actor) as action:
            action.conn.execute(insert(UserRow).values(id=7, email="hal@example.com", display_name="Hal", tier="free"))
            raise InvalidInput("no such tier: platinum")
    assert _user_count(services, "hal@example.com") == 0
    (record,) = services.audit.latest(AUDITOR)
    assert (record.outcome, record.detail) == (AuditOutcome.INVALID, "no such tier: platinum")


def test_optional_reason(services: Services, operator_actor: Actor) -> None:
    with services.audit.action(
        operator_actor,
        "cache.invalidate_tier",
        permission=Permission.INVALIDATE_CACHE,
        target_type="cache_namespace",
        target_id="users",
        reason_required=False,
    ):
        pass
    (record,) = services.audit.latest(AUDITOR)
    assert (record.outcome, record.reason) == (AuditOutcome.SUCCESS, None)


def test_the_body_can_name_the_target(services: Services, support_actor: Actor) -> None:
    with _add_user(services, user_id=0, who=support_actor) as action:
        new_id = action.conn.execute(
            insert(UserRow).values(id=8, email="ivy@example.com", display_name="Ivy", tier="team").returning(UserRow.id)
        ).scalar_one()
        action.target_id = str(new_id)
    assert services.audit.latest(AUDITOR)[0].target_id == "8"


def test_before_and_after_round_trip_as_json(services: Services, admin_actor: Actor) -> None:
    before = {"tier": "free", "flags": ["a", "b"], "limits": {"daily": 100, "burst": None}, "ok": True}
    after = {
        "tier": "enterprise",
        "since": datetime(2026, 11, 26, 5, 0, tzinfo=UTC),  # not JSON: stored as its text
        "price": Decimal("12.50"),
        "name": "Zoë ✓",
    }
    with _add_user(services, user_id=9, who=admin_actor) as action:
        action.before = before
        action.after = after
    (record,) = services.audit.latest(AUDITOR)
    assert record.before == before
    assert record.after == {
        "tier": "enterprise",
        "since": "2026-11-26 05:00:00+00:00",
        "price": "12.50",
        "name": "Zoë ✓",
    }
    with services.db.write() as conn:
        stored = conn.execute(text("SELECT jsonb_typeof(before -> 'limits') FROM audit_log")).scalar_one()
    assert stored == "object"


def test_request_id_comes_from_the_context_or_is_fresh(services: Services, admin_actor: Actor) -> None:
    for _ in range(2):
        with _add_user(services, user_id=10, who=admin_actor):
            pass
    first, second = (r.request_id for r in services.audit.latest(AUDITOR, limit=2))
    assert first != second  # two actions, two requests
    token = request_id_var.set("req-from-the-page")
    try:
        with _add_user(services, user_id=10, who=admin_actor):
            pass
    finally:
        request_id_var.reset(token)
    assert services.audit.latest(AUDITOR)[0].request_id == "req-from-the-page"


def test_audit_rows_cannot_be_updated_or_deleted(services: Services, support_actor: Actor) -> None:
    with _add_user(services, user_id=11, who=support_actor):
        pass
    for statement in (update(AuditLogRow).values(outcome="denied"), text("DELETE FROM audit_log")):
        with pytest.raises(DBAPIError, match="append-only"), services.db.write() as conn:
            conn.execute(statement)
    assert [r.outcome for r in _audit_rows(services)] == ["success"]


def test_search_filters(services: Services) -> None:
    alice = actor(Role.SUPPORT, "alice@krowoc.test")
    omar = actor(Role.OPERATOR, "omar@krowoc.test")
    viewer = actor(Role.VIEWER, "val@krowoc.test")
    common = {"reason": "ticket 123", "target_type": "user"}
    with services.audit.action(alice, "user.suspend", permission=Permission.SUSPEND_USER, target_id="1", **common):
        pass
    with services.audit.action(
        alice, "user.change_tier", permission=Permission.CHANGE_USER_TIER, target_id="2", **common
    ):
        pass
    with services.audit.action(
        omar,
        "cache.invalidate_tier",
        permission=Permission.INVALIDATE_CACHE,
        target_type="cache_tier",
        target_id="memory",
        reason="stale",
    ):
        pass
    with pytest.raises(PermissionDenied):  # noqa: SIM117
        with services.audit.action(viewer, "user.suspend", permission=Permission.SUSPEND_USER, target_id="1", **common):
            pass

    def ids(**filters: object) -> list[tuple[str, str, str]]:
        return [(r.actor, r.action, r.target_id) for r in services.audit.search(AUDITOR, **filters)]  # type: ignore[arg-type]

    assert ids(actor="alice@krowoc.test") == [
        ("alice@krowoc.test", "user.change_tier", "2"),
        ("alice@krowoc.test", "user.suspend", "1"),
    ]
    assert ids(action="user.suspend") == [
        ("val@krowoc.test", "user.suspend", "1"),
        ("alice@krowoc.test", "user.suspend", "1"),
    ]
    assert ids(target_type="cache_tier") == [("omar@krowoc.test", "cache.invalidate_tier", "memory")]
    assert ids(target_type="user", target_id="2") == [("alice@krowoc.test", "user.change_tier", "2")]
    assert ids(actor="alice@krowoc.test", action="user.suspend") == [("alice@krowoc.test", "user.suspend", "1")]
    assert len(ids()) == 4
    assert len(services.audit.search(AUDITOR, limit=2)) == 2
    assert ids(actor="nobody@krowoc.test") == []
    now = datetime.now(UTC)
    assert len(ids(since=now - timedelta(minutes=5))) == 4
    assert ids(since=now + timedelta(minutes=5)) == []
    assert ids(until=now - timedelta(minutes=5)) == []
    assert [r.outcome for r in services.audit.search(AUDITOR, actor="val@krowoc.test")] == [AuditOutcome.DENIED]


def _events(services: Services) -> list[dict[str, object]]:
    stream = f"{services.settings.redis_key_prefix}{ADMIN_EVENTS_STREAM}"
    entries = services.redis.xrange(stream)
    return [
        {"kind": fields[b"kind"].decode(), **json.loads(fields[b"payload"])}
        for _, fields in entries  # type: ignore[union-attr]
    ]


def test_success_publishes_an_event_on_the_admin_stream(services: Services, support_actor: Actor) -> None:
    target = uuid.uuid4().hex  # the stream is shared by the run: find this test's events by target
    assert services.settings.redis_key_prefix != "krowoc:"  # a test prefix, not the real stream
    with services.audit.action(
        support_actor,
        "user.suspend",
        permission=Permission.SUSPEND_USER,
        target_type="user",
        target_id=target,
        reason="abuse",
    ):
        pass
    mine = [e for e in _events(services) if e.get("target_id") == target]
    assert mine == [
        {"kind": "user.suspend", "actor": "support@krowoc.test", "target_type": "user", "target_id": target}
    ]


def test_denied_invalid_and_failed_actions_publish_nothing(services: Services, support_actor: Actor) -> None:
    target = uuid.uuid4().hex
    attempts = [
        (actor(Role.VIEWER), "abuse", PermissionDenied, False),
        (support_actor, None, InvalidInput, False),
        (support_actor, "abuse", RuntimeError, True),
    ]
    for who, reason, error, fail_in_body in attempts:
        with pytest.raises(error):  # noqa: SIM117
            with services.audit.action(
                who,
                "user.suspend",
                permission=Permission.SUSPEND_USER,
                target_type="user",
                target_id=target,
                reason=reason,
            ):
                if fail_in_body:
                    raise RuntimeError("boom")
    assert [e for e in _events(services) if e.get("target_id") == target] == []
    assert [r.outcome for r in services.audit.search(AUDITOR, target_id=target)] == [
        AuditOutcome.FAILED,
        AuditOutcome.INVALID,
        AuditOutcome.DENIED,
    ]


def test_reading_the_audit_log_needs_the_permission_in_core(services: Services) -> None:
    viewer = Actor(id="viewer@krowoc.test", role=Role.VIEWER, source=AuditSource.CLI)
    support = Actor(id="support@krowoc.test", role=Role.SUPPORT, source=AuditSource.CLI)
    services.audit.record(
        actor=support, action="user.reset_rate_limit", target_type="user", target_id="5", outcome=AuditOutcome.SUCCESS
    )
    with pytest.raises(PermissionDenied):
        services.audit.search(viewer, target_id="5")
    with pytest.raises(PermissionDenied):
        services.audit.latest(viewer)
    assert [r.action for r in services.audit.search(support, target_id="5")] == ["user.reset_rate_limit"]
    # Each refused read left its own row.
    denied = services.audit.search(AUDITOR, action="audit.read", outcome=AuditOutcome.DENIED)
    assert [(r.actor, r.target_type) for r in denied] == [("viewer@krowoc.test", "audit_log")] * 2
