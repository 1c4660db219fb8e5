"""The append-only audit log and the wrapper every admin action runs in."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, insert, select

from core.adapters.db import Database
from core.adapters.tables import AuditLogRow
from core.adapters.telemetry import current_request_id
from core.domain.actions import AdminAction
from core.domain.exceptions import InvalidInput
from core.domain.models import Actor, AuditOutcome, AuditRecord
from core.domain.rbac import Permission, PermissionDenied, require


class EventPublisher(Protocol):
    def publish(self, kind: str, payload: dict[str, Any]) -> None: ...


class NoEvents:
    """Publishes nowhere; for the CLI tools and unit tests that need no other instance told."""

    def publish(self, kind: str, payload: dict[str, Any]) -> None:
        return None


def _jsonable(value: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if value is None else json.loads(json.dumps(value, default=str))


@dataclass
class AuditedAction:
    """What the body of an admin action fills in: the state before and after, on the open transaction."""

    conn: Connection
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    target_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class AuditLog:
    """Writes audit records on the primary; searches read on the replica when there is one."""

    def __init__(self, db: Database, events: EventPublisher | None = None) -> None:
        self.db = db
        self.events: EventPublisher = events or NoEvents()

    def record(
        self,
        *,
        actor: Actor,
        action: AdminAction,
        target_type: str,
        target_id: str,
        outcome: AuditOutcome,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
        reason: str | None = None,
        detail: str | None = None,
        conn: Connection | None = None,
    ) -> int:
        """Append one audit record, in ``conn``'s transaction when given; return its id."""
        action = AdminAction(action)
        stmt = (
            insert(AuditLogRow)
            .values(
                actor=actor.id,
                actor_role=actor.role.value,
                action=action.value,
                target_type=target_type,
                target_id=target_id,
                before=_jsonable(before),
                after=_jsonable(after),
                reason=reason,
                request_id=current_request_id(),
                source=actor.source.value,
                outcome=outcome.value,
                detail=detail[:2000] if detail else None,
            )
            .returning(AuditLogRow.id)
        )
        if conn is not None:
            return int(conn.execute(stmt).scalar_one())
        with self.db.write() as own:
            return int(own.execute(stmt).scalar_one())

    @contextmanager
    def action(
        self,
        actor: Actor,
        action: AdminAction,
        *,
        permission: Permission,
        target_type: str,
        target_id: str,
        reason: str | None = None,
        reason_required: bool = True,
    ) -> Iterator[AuditedAction]:
        """Run an admin action: checks the permission, opens a transaction, records the outcome.

        A denied, invalid or failed attempt is recorded in its own transaction and the error is
        raised again; a successful one is recorded in the action's transaction, so the change and
        its audit row commit together.
        """
        action = AdminAction(action)
        common: dict[str, Any] = {"actor": actor, "action": action, "target_type": target_type}
        try:
            require(actor, permission)
        except PermissionDenied as exc:
            self.record(**common, target_id=target_id, outcome=AuditOutcome.DENIED, reason=reason, detail=str(exc))
            raise
        cleaned = (reason or "").strip()
        if reason_required and not cleaned:
            self.record(**common, target_id=target_id, outcome=AuditOutcome.INVALID, detail="no reason given")
            raise InvalidInput("Give a reason for this change; it goes into the audit log.")
        if len(cleaned) > 1000:
            self.record(**common, target_id=target_id, outcome=AuditOutcome.INVALID, detail="reason too long")
            raise InvalidInput("The reason may be at most 1,000 characters.")
        state: AuditedAction | None = None
        try:
            with self.db.write() as conn:
                state = AuditedAction(conn=conn)
                yield state
                self.record(
                    **common,
                    target_id=state.target_id or target_id,
                    outcome=AuditOutcome.SUCCESS,
                    before=state.before,
                    after=state.after,
                    reason=cleaned or None,
                    conn=conn,
                )
        except InvalidInput as exc:
            self.record(**common, target_id=target_id, outcome=AuditOutcome.INVALID, reason=cleaned, detail=str(exc))
            raise
        except Exception as exc:
            self.record(
                **common,
                target_id=target_id,
                outcome=AuditOutcome.FAILED,
                before=state.before if state else None,
                reason=cleaned or None,
                detail=f"{exc.__class__.__name__}: {exc}",
            )
            raise
        self.events.publish(
            action.value,
            {"actor": actor.id, "target_type": target_type, "target_id": state.target_id or target_id},
        )

    def latest(self, *, limit: int = 1) -> list[AuditRecord]:
        """Return the newest audit records, newest first."""
        with self.db.write() as conn:
            rows = conn.execute(select(AuditLogRow).order_by(AuditLogRow.id.desc()).limit(limit)).all()
        return [AuditRecord.model_validate(row, from_attributes=True) for row in rows]

    def browse(self, reader: Actor, /, **filters: Any) -> list[AuditRecord]:
        """Return audit records for a member of staff allowed to read the audit log (see ``search``)."""
        require(reader, Permission.VIEW_AUDIT_LOG)
        return self.search(**filters)

    def search(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        target_type: str | None = None,
        target_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 200,
    ) -> list[AuditRecord]:
        """Return audit records matching every given filter, newest first."""
        stmt = select(AuditLogRow).order_by(AuditLogRow.at.desc(), AuditLogRow.id.desc()).limit(min(limit, 1000))
        if actor:
            stmt = stmt.where(AuditLogRow.actor == actor)
        if action:
            stmt = stmt.where(AuditLogRow.action == action)
        if target_type:
            stmt = stmt.where(AuditLogRow.target_type == target_type)
        if target_id:
            stmt = stmt.where(AuditLogRow.target_id == target_id)
        if since:
            stmt = stmt.where(AuditLogRow.at >= since)
        if until:
            stmt = stmt.where(AuditLogRow.at < until)
        with self.db.read() as conn:
            rows = conn.execute(stmt).all()
        return [AuditRecord.model_validate(row, from_attributes=True) for row in rows]

    def changed_targets(self, *, actions: tuple[AdminAction, ...], since: datetime) -> set[str]:
        """Return the targets that one of these actions changed successfully since a moment."""
        stmt = (
            select(AuditLogRow.target_id)
            .distinct()
            .where(
                AuditLogRow.action.in_([a.value for a in actions]),
                AuditLogRow.outcome == AuditOutcome.SUCCESS.value,
                AuditLogRow.at >= since,
            )
        )
        with self.db.read() as conn:
            return {str(row[0]) for row in conn.execute(stmt)}
