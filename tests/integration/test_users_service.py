"""Support's actions on users and executions: permission, audit with before and after, idempotence."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text

from core.adapters.redis import make_redis
from core.bootstrap import Services, build_services
from core.domain.exceptions import InvalidInput, SessionStoreUnavailable
from core.domain.models import Actor, ExecutionStatus, Role, Tier, UserStatus
from core.domain.rbac import PermissionDenied
from core.users import (
    ExecutionCancel,
    ExecutionNotFound,
    PayloadReveal,
    RedisUserSessions,
    TierChange,
    UserNotFound,
    UserService,
    UserStatusChange,
)
from tests.support.databases import SeedPlan
from tests.support.settings import actor, settings_for


@pytest.fixture()
def svc(seeded_copy: Callable[[SeedPlan], str], redis_url: str, redis_prefix: str) -> Iterator[Services]:
    """Services on a copy of a small seeded platform (seeded once per run) that the test may change."""
    url = seeded_copy(SeedPlan(executions=2_000, days=2, seed=5))
    built = build_services(settings_for(url, redis_url, redis_prefix))
    yield built
    built.close()


def user_row(services: Services, user_id: int) -> Any:
    with services.db.read() as conn:
        return conn.execute(text("SELECT tier, status FROM users WHERE id = :id"), {"id": user_id}).one()


def some_user(services: Services, tier: str = "free", status: str = "active") -> int:
    with services.db.read() as conn:
        return int(
            conn.execute(
                text("SELECT id FROM users WHERE tier = :t AND status = :s ORDER BY id LIMIT 1"),
                {"t": tier, "s": status},
            ).scalar_one()
        )


def audit_rows(services: Services, action: str, *, intents: bool = False) -> list[Any]:
    """Return the rows of an action in order: its outcomes, or with ``intents`` its pending intents."""
    which = "outcome = 'pending'" if intents else "outcome <> 'pending'"
    with services.db.read() as conn:
        return list(
            conn.execute(
                text(f"SELECT * FROM audit_log WHERE action = :a AND {which} ORDER BY id"), {"a": action}
            ).mappings()
        )


def test_support_changes_a_tier_and_the_audit_log_has_before_and_after(svc: Services, support_actor: Actor) -> None:
    user_id = some_user(svc)

    changed = svc.users.change_tier(support_actor, TierChange(user_id=user_id, tier=Tier.PRO, reason="ticket 12"))

    assert changed.tier is Tier.PRO and user_row(svc, user_id).tier == "pro"
    [row] = audit_rows(svc, "user.change_tier")
    assert row["outcome"] == "success" and row["target_id"] == str(user_id)
    assert row["before"] == {"tier": "free", "status": "active"}
    assert row["after"] == {"tier": "pro", "status": "active"}
    assert (row["actor"], row["actor_role"], row["reason"]) == (support_actor.id, "support", "ticket 12")


def test_changing_to_the_same_tier_again_succeeds_without_a_second_change(svc: Services, support_actor: Actor) -> None:
    user_id = some_user(svc)
    change = TierChange(user_id=user_id, tier=Tier.TEAM, reason="upgrade")
    svc.users.change_tier(support_actor, change)

    again = svc.users.change_tier(support_actor, change)

    assert again.tier is Tier.TEAM
    first, second = audit_rows(svc, "user.change_tier")
    assert first["before"] != first["after"]
    assert second["outcome"] == "success" and second["before"] == second["after"] == {
        "tier": "team",
        "status": "active",
    }


def test_a_viewer_may_not_change_a_tier_and_the_attempt_is_recorded(svc: Services) -> None:
    user_id = some_user(svc)
    viewer = actor(Role.VIEWER)

    with pytest.raises(PermissionDenied):
        svc.users.change_tier(viewer, TierChange(user_id=user_id, tier=Tier.ENTERPRISE, reason="please"))

    assert user_row(svc, user_id).tier == "free"
    [row] = audit_rows(svc, "user.change_tier")
    assert row["outcome"] == "denied" and row["actor"] == viewer.id


def test_an_action_without_a_reason_is_refused_and_changes_nothing(svc: Services, support_actor: Actor) -> None:
    user_id = some_user(svc)

    with pytest.raises(InvalidInput, match="reason"):
        svc.users.suspend(support_actor, UserStatusChange(user_id=user_id, reason="   "))

    assert user_row(svc, user_id).status == "active"
    [row] = audit_rows(svc, "user.suspend")
    assert row["outcome"] == "invalid"


def test_an_unknown_user_is_refused_and_recorded_as_invalid(svc: Services, support_actor: Actor) -> None:
    with pytest.raises(UserNotFound, match="No user has the id 987654321"):
        svc.users.change_tier(support_actor, TierChange(user_id=987654321, tier=Tier.PRO, reason="x"))
    [row] = audit_rows(svc, "user.change_tier")
    assert row["outcome"] == "invalid"


def test_suspending_drops_the_users_sessions_and_cached_profile(
    svc: Services, support_actor: Actor, redis_prefix: str
) -> None:
    user_id = some_user(svc)
    other = some_user(svc, tier="pro")
    sessions = RedisUserSessions(svc.redis, redis_prefix)
    sessions.open(user_id, f"{user_id}-a")
    sessions.open(user_id, f"{user_id}-b")
    sessions.open(other, f"{other}-a")
    assert svc.cached_users.profile(user_id).status is UserStatus.ACTIVE  # type: ignore[union-attr]

    suspended = svc.users.suspend(support_actor, UserStatusChange(user_id=user_id, reason="abuse report 7"))

    assert suspended.status is UserStatus.SUSPENDED
    assert svc.redis.exists(sessions.session_key(f"{user_id}-a"), sessions.session_key(f"{user_id}-b")) == 0
    assert svc.redis.exists(sessions.index_key(user_id)) == 0
    assert svc.redis.exists(sessions.session_key(f"{other}-a")) == 1
    assert svc.cached_users.profile(user_id).status is UserStatus.SUSPENDED  # type: ignore[union-attr]
    [row] = audit_rows(svc, "user.suspend")
    assert row["before"] == {"tier": "free", "status": "active"}
    assert row["after"] == {"tier": "free", "status": "suspended", "sessions_dropped": 2}
    # The sessions live in Redis: the intent was committed before they were dropped, and the outcome names it.
    [intent] = audit_rows(svc, "user.suspend", intents=True)
    assert intent["id"] < row["id"] and row["intent_id"] == intent["id"] and intent["reason"] == "abuse report 7"


def test_suspend_and_restore_are_idempotent(svc: Services, support_actor: Actor) -> None:
    user_id = some_user(svc)
    change = UserStatusChange(user_id=user_id, reason="r")

    svc.users.suspend(support_actor, change)
    svc.users.suspend(support_actor, change)
    svc.users.restore(support_actor, change)
    restored = svc.users.restore(support_actor, change)

    assert restored.status is UserStatus.ACTIVE and user_row(svc, user_id).status == "active"
    suspends = audit_rows(svc, "user.suspend")
    restores = audit_rows(svc, "user.restore")
    assert [r["after"]["status"] for r in suspends] == ["suspended", "suspended"]
    assert suspends[1]["before"]["status"] == "suspended"
    assert [(r["before"]["status"], r["after"]["status"]) for r in restores] == [
        ("suspended", "active"),
        ("active", "active"),
    ]


def test_a_suspension_with_redis_down_changes_nothing_and_is_recorded_as_failed(
    svc: Services, support_actor: Actor
) -> None:
    user_id = some_user(svc)
    dead = make_redis("redis://127.0.0.1:9/0")
    service = UserService(svc.db, svc.audit, RedisUserSessions(dead, "x:"))

    with pytest.raises(SessionStoreUnavailable, match="nothing was changed"):
        service.suspend(support_actor, UserStatusChange(user_id=user_id, reason="r"))

    assert user_row(svc, user_id).status == "active"
    [row] = audit_rows(svc, "user.suspend")
    assert row["outcome"] == "failed" and "SessionStoreUnavailable" in row["detail"]
    [intent] = audit_rows(svc, "user.suspend", intents=True)
    assert row["intent_id"] == intent["id"]
    dead.close()


def insert_execution(services: Services, status: str) -> int:
    with services.db.write() as conn:
        return int(
            conn.execute(
                text(
                    "INSERT INTO prompt_executions (created_at, user_id, prompt_id, provider, model, status, "
                    "request_id) VALUES (:at, 1, 1, 'openai', 'gpt-4o', :s, 'req_stuck') RETURNING id"
                ),
                {"at": datetime.now(UTC), "s": status},
            ).scalar_one()
        )


def execution_status(services: Services, execution_id: int) -> tuple[str, datetime | None]:
    with services.db.read() as conn:
        row = conn.execute(
            text("SELECT status, finished_at FROM prompt_executions WHERE id = :id"), {"id": execution_id}
        ).one()
    return row.status, row.finished_at


@pytest.mark.parametrize("stuck", ["queued", "running"])
def test_a_stuck_execution_is_cancelled_once(svc: Services, support_actor: Actor, stuck: str) -> None:
    execution_id = insert_execution(svc, stuck)
    cancel = ExecutionCancel(execution_id=execution_id, reason="stuck for an hour")

    assert svc.users.cancel_execution(support_actor, cancel) is ExecutionStatus.CANCELLED
    status, finished = execution_status(svc, execution_id)
    assert status == "cancelled" and finished is not None
    assert svc.users.cancel_execution(support_actor, cancel) is ExecutionStatus.CANCELLED
    assert execution_status(svc, execution_id) == (status, finished)

    first, second = audit_rows(svc, "execution.cancel")
    assert first["before"]["status"] == stuck and first["after"]["status"] == "cancelled"
    assert second["before"] == second["after"] and second["outcome"] == "success"


def test_a_finished_execution_cannot_be_cancelled(svc: Services, support_actor: Actor) -> None:
    execution_id = insert_execution(svc, "succeeded")

    with pytest.raises(InvalidInput, match="only a queued or running execution"):
        svc.users.cancel_execution(support_actor, ExecutionCancel(execution_id=execution_id, reason="r"))
    with pytest.raises(ExecutionNotFound):
        svc.users.cancel_execution(support_actor, ExecutionCancel(execution_id=10**15, reason="r"))

    assert execution_status(svc, execution_id)[0] == "succeeded"
    assert [r["outcome"] for r in audit_rows(svc, "execution.cancel")] == ["invalid", "invalid"]


def payload_execution(services: Services) -> int:
    with services.db.read() as conn:
        return int(conn.execute(text("SELECT execution_id FROM execution_payloads ORDER BY 1 LIMIT 1")).scalar_one())


def test_support_reveals_a_payload_with_a_reason_and_the_text_stays_out_of_the_audit_log(
    svc: Services, support_actor: Actor
) -> None:
    execution_id = payload_execution(svc)

    payload = svc.users.reveal_payload(support_actor, PayloadReveal(execution_id=execution_id, reason="ticket 99"))

    assert payload.execution_id == execution_id and payload.input_text.startswith("Please ")
    [row] = audit_rows(svc, "execution.reveal_payload")
    assert row["outcome"] == "success" and row["reason"] == "ticket 99" and row["target_id"] == str(execution_id)
    assert row["before"] == {"masked": True}
    assert row["after"]["masked"] is False and row["after"]["input_characters"] == len(payload.input_text)
    assert payload.input_text not in str(row)


@pytest.mark.parametrize(
    ("role", "reason", "error", "outcome"),
    [
        (Role.VIEWER, "curious", PermissionDenied, "denied"),
        (Role.OPERATOR, "curious", PermissionDenied, "denied"),
        (Role.SUPPORT, "", InvalidInput, "invalid"),
    ],
)
def test_revealing_needs_the_support_role_and_a_reason(
    svc: Services, role: Role, reason: str, error: type[Exception], outcome: str
) -> None:
    execution_id = payload_execution(svc)

    with pytest.raises(error):
        svc.users.reveal_payload(actor(role), PayloadReveal(execution_id=execution_id, reason=reason))

    [row] = audit_rows(svc, "execution.reveal_payload")
    assert row["outcome"] == outcome and row["after"] is None


def test_every_action_publishes_an_admin_event(svc: Services, support_actor: Actor, redis_prefix: str) -> None:
    user_id = some_user(svc)
    svc.users.change_tier(support_actor, TierChange(user_id=user_id, tier=Tier.PRO, reason="r"))

    entries = svc.redis.xrevrange(f"{redis_prefix}admin-events", count=20)
    kinds = [fields[b"kind"] for _, fields in entries]
    assert b"user.change_tier" in kinds
