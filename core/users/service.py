"""``UserService``: support's actions on a platform user and their executions.

Every action runs inside ``AuditLog.action``: the actor's permission is checked, a reason is
required, the change and its audit row (with the state before and after) commit in one
transaction, and the event is published on the admin-events stream. Each action is idempotent:
asking for the state a user or execution is already in succeeds, changes nothing and is recorded
with equal ``before`` and ``after``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Connection, text

from core.adapters.db import Database
from core.audit import AuditLog
from core.domain.actions import AdminAction
from core.domain.exceptions import InvalidInput
from core.domain.models import Actor, ExecutionStatus, User, UserStatus
from core.domain.rbac import Permission
from core.users.models import (
    ExecutionCancel,
    ExecutionNotFound,
    Payload,
    PayloadReveal,
    TierChange,
    UserNotFound,
    UserStatusChange,
)
from core.users.sessions import UserSessions

USER_COLUMNS = "id, email, display_name, tier, status, created_at, last_seen_at"
STUCK_STATUSES = (ExecutionStatus.QUEUED, ExecutionStatus.RUNNING)


class UserProfileCache(Protocol):
    def forget(self, user_id: int) -> None:
        """Drop a user's cached profile."""
        ...


class NoProfileCache:
    """Caches nothing; for a service built without the cache tier."""

    def forget(self, user_id: int) -> None:
        return None


def _user_state(user: dict[str, Any]) -> dict[str, Any]:
    return {"tier": user["tier"], "status": user["status"]}


class UserService:
    """Change a user's tier, suspend or restore them, cancel a stuck execution, reveal a payload."""

    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        sessions: UserSessions,
        profiles: UserProfileCache | None = None,
    ) -> None:
        self.db = db
        self.audit = audit
        self.sessions = sessions
        self.profiles: UserProfileCache = profiles or NoProfileCache()

    # -- users ------------------------------------------------------------------------------------

    def _locked_user(self, conn: Connection, user_id: int) -> dict[str, Any]:
        row = (
            conn.execute(
                text(f"SELECT {USER_COLUMNS} FROM users WHERE id = :id FOR UPDATE"),
                {"id": user_id},
            )
            .mappings()
            .first()
        )
        if row is None:
            raise UserNotFound(user_id)
        return dict(row)

    def _set_user(self, conn: Connection, user_id: int, **values: str) -> dict[str, Any]:
        assignments = ", ".join(f"{name} = :{name}" for name in values)
        row = (
            conn.execute(
                text(
                    f"UPDATE users SET {assignments} WHERE id = :id "
                    "RETURNING id, email, display_name, tier, status, created_at, last_seen_at"
                ),
                {"id": user_id, **values},
            )
            .mappings()
            .one()
        )
        return dict(row)

    def change_tier(self, actor: Actor, change: TierChange) -> User:
        """Move a user to another tier; a user already on that tier is left as is."""
        with self.audit.action(
            actor,
            AdminAction.USER_CHANGE_TIER,
            permission=Permission.CHANGE_USER_TIER,
            target_type="user",
            target_id=str(change.user_id),
            reason=change.reason,
        ) as action:
            user = self._locked_user(action.conn, change.user_id)
            action.before = _user_state(user)
            if user["tier"] != change.tier.value:
                user = self._set_user(action.conn, change.user_id, tier=change.tier.value)
            action.after = _user_state(user)
        self.profiles.forget(change.user_id)
        return User.model_validate(user)

    def suspend(self, actor: Actor, change: UserStatusChange) -> User:
        """Suspend a user: they can no longer run prompts, and their sessions and cached profile are dropped."""
        return self._set_status(actor, change, UserStatus.SUSPENDED)

    def restore(self, actor: Actor, change: UserStatusChange) -> User:
        """Restore a suspended user to active."""
        return self._set_status(actor, change, UserStatus.ACTIVE)

    def _set_status(self, actor: Actor, change: UserStatusChange, wanted: UserStatus) -> User:
        name = AdminAction.USER_SUSPEND if wanted is UserStatus.SUSPENDED else AdminAction.USER_RESTORE
        with self.audit.action(
            actor,
            name,
            permission=Permission.SUSPEND_USER,
            target_type="user",
            target_id=str(change.user_id),
            reason=change.reason,
            # A suspension also drops the user's sessions in Redis: its intent is recorded first.
            external=wanted is UserStatus.SUSPENDED,
        ) as action:
            user = self._locked_user(action.conn, change.user_id)
            action.before = _user_state(user)
            changed = user["status"] != wanted.value
            if changed:
                user = self._set_user(action.conn, change.user_id, status=wanted.value)
            action.after = _user_state(user)
            if wanted is UserStatus.SUSPENDED:
                # Inside the transaction: if Redis refuses, the suspension rolls back and is recorded as failed.
                action.after["sessions_dropped"] = self.sessions.drop(change.user_id)
        self.profiles.forget(change.user_id)
        return User.model_validate(user)

    # -- executions -------------------------------------------------------------------------------

    def cancel_execution(self, actor: Actor, cancel: ExecutionCancel) -> ExecutionStatus:
        """Cancel an execution stuck in queued or running; one already cancelled is left as is."""
        with self.audit.action(
            actor,
            AdminAction.EXECUTION_CANCEL,
            permission=Permission.CANCEL_EXECUTION,
            target_type="execution",
            target_id=str(cancel.execution_id),
            reason=cancel.reason,
        ) as action:
            row = (
                action.conn.execute(
                    text("SELECT id, created_at, status, finished_at FROM prompt_executions WHERE id = :id FOR UPDATE"),
                    {"id": cancel.execution_id},
                )
                .mappings()
                .first()
            )
            if row is None:
                raise ExecutionNotFound(cancel.execution_id)
            status = ExecutionStatus(row["status"])
            action.before = {"status": status.value, "finished_at": row["finished_at"]}
            if status is ExecutionStatus.CANCELLED:
                action.after = dict(action.before)
                return status
            if status not in STUCK_STATUSES:
                raise InvalidInput(
                    f"Execution {cancel.execution_id} has already {status.value.replace('_', ' ')}; only a queued "
                    "or running execution can be cancelled."
                )
            finished = datetime.now(UTC)
            action.conn.execute(
                text(
                    "UPDATE prompt_executions SET status = 'cancelled', finished_at = :finished "
                    "WHERE id = :id AND created_at = :created_at"
                ),
                {"id": cancel.execution_id, "created_at": row["created_at"], "finished": finished},
            )
            action.after = {"status": ExecutionStatus.CANCELLED.value, "finished_at": finished}
        return ExecutionStatus.CANCELLED

    def reveal_payload(self, actor: Actor, reveal: PayloadReveal) -> Payload:
        """Return an execution's input and output to a support member who gave a reason (audited)."""
        with self.audit.action(
            actor,
            AdminAction.EXECUTION_REVEAL_PAYLOAD,
            permission=Permission.REVEAL_PAYLOAD,
            target_type="execution",
            target_id=str(reveal.execution_id),
            reason=reveal.reason,
        ) as action:
            row = (
                action.conn.execute(
                    text(
                        "SELECT execution_id, created_at, input_text, output_text FROM execution_payloads "
                        "WHERE execution_id = :id"
                    ),
                    {"id": reveal.execution_id},
                )
                .mappings()
                .first()
            )
            if row is None:
                exists = action.conn.execute(
                    text("SELECT 1 FROM prompt_executions WHERE id = :id"), {"id": reveal.execution_id}
                ).first()
                if exists is None:
                    raise ExecutionNotFound(reveal.execution_id)
                raise InvalidInput(f"Execution {reveal.execution_id} has no stored payload.")
            payload = Payload.model_validate(dict(row))
            # The audit row says what was shown, never the text itself.
            action.before = {"masked": True}
            action.after = {
                "masked": False,
                "input_characters": len(payload.input_text),
                "output_characters": len(payload.output_text or ""),
            }
        return payload
