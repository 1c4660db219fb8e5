"""The append-only audit log and the wrapper every admin action runs in.

Every attempt at an admin action leaves a row: denied, invalid, failed or successful. An action
whose effect lies outside the database (Redis, Unleash) is recorded before it acts: a ``pending``
intent is committed first, then the effect happens, then the outcome row names the intent; an
intent a crash left without an outcome is closed as ``unknown`` by ``reap``. Rows are chained by
hash in the database itself (migration 0004), and ``verify`` recomputes the chain.

Nothing a person typed can make a write fail: text with control characters is refused as input
before anything happens, and every text written to the log is made printable and cut to its
column's size first, so the refusal itself is recorded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection, and_, exists, insert, literal, select, text
from sqlalchemy.orm import aliased

from core.adapters.db import Database
from core.adapters.tables import AuditLogRow
from core.adapters.telemetry import ADMIN_ACTIONS, current_request_id
from core.audit.throttle import ActionThrottle, ActionThrottled
from core.domain.actions import AdminAction
from core.domain.exceptions import DatabaseUnavailable, InvalidInput
from core.domain.models import Actor, AuditOutcome, AuditRecord
from core.domain.rbac import Permission, PermissionDenied, require

MAX_REASON = 1000
PAGE_LIMIT = 1000
REAP_AFTER = timedelta(minutes=5)
"""An intent with no outcome this long after it was recorded is closed as ``unknown``."""
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
"""Control characters: every C0 one but tab and newline, DEL, the C1 ones, and the Unicode line breaks."""


class EventPublisher(Protocol):
    """Where a successful action is announced to the other instances."""

    def publish(self, kind: str, payload: dict[str, Any]) -> None:
        """Announce one event."""


class NoEvents:
    """Publishes nowhere; for the CLI tools and unit tests that need no other instance told."""

    def publish(self, kind: str, payload: dict[str, Any]) -> None:
        """Announce nothing."""
        return None


def refuse_control_characters(label: str, value: str | None) -> None:
    """Raise ``InvalidInput`` when a person's text holds a control character (a NUL, an escape...)."""
    if value and CONTROL.search(value):
        raise InvalidInput(f"{label} holds a control character; type it again without one.")


def printable(value: str | None, limit: int) -> str | None:
    """Return text safe to store: control characters written out (a NUL as four characters), cut to ``limit``."""
    if value is None:
        return None
    shown = CONTROL.sub(_written_out, value)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def _written_out(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 256 else f"\\u{code:04x}"


def _jsonable(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    # PostgreSQL's jsonb refuses the escaped NUL (\u0000) that JSON allows: write it out as text.
    cleaned: dict[str, Any] = json.loads(json.dumps(value, default=str).replace("\\u0000", "\\\\x00"))
    return cleaned


@dataclass
class AuditedAction:
    """What the body of an admin action fills in: the state before and after, on the open transaction."""

    conn: Connection
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    target_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    intent_id: int | None = None
    """The id of the action's ``pending`` intent, when it acts outside the database."""


@dataclass(frozen=True)
class ChainBreak:
    """The first row whose hash does not follow from its content and the row before it."""

    id: int
    why: str


@dataclass(frozen=True)
class ChainVerdict:
    """What ``verify`` found: how many rows it checked, the first break if any, and the chain's head."""

    rows: int
    first_break: ChainBreak | None
    head_id: int | None
    head_hash: str | None

    @property
    def intact(self) -> bool:
        """Whether every checked row follows from the one before it."""
        return self.first_break is None


DURABLE = text("SET LOCAL synchronous_commit = on")
"""An audit row is on disk when its commit returns, even where the server commits asynchronously by default:
an intent must survive a crash right after the change it announces."""

VERIFY = text(
    """
    SELECT id, hash, prev_hash, krowoc_audit_hash(prev_hash, a) AS expected,
           lag(hash) OVER (ORDER BY id) AS previous
    FROM audit_log AS a
    WHERE id >= :since
    ORDER BY id
    """
)


def _may_have_applied(exc: BaseException) -> bool:
    """Tell whether a failed call to Redis or Unleash was sent but not answered (so it may have been done).

    A read timeout (the server took the command, then said nothing in time) leaves the outcome
    unknown; a refused connection, a connect timeout or an error answer means nothing was done.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        kind = type(current)
        if kind.__name__ == "ReadTimeout" or (kind.__module__.startswith("redis") and kind.__name__ == "TimeoutError"):
            return True
        current = current.__cause__ or current.__context__
    return False


class AuditLog:
    """Writes audit records on the primary; searches read on the replica when there is one."""

    def __init__(
        self,
        db: Database,
        events: EventPublisher | None = None,
        *,
        throttle: ActionThrottle | None = None,
        reap_after: timedelta = REAP_AFTER,
    ) -> None:
        self.db = db
        self.events: EventPublisher = events or NoEvents()
        self.throttle = throttle
        self.reap_after = reap_after

    # -- writing --------------------------------------------------------------------------------

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
        intent_id: int | None = None,
        conn: Connection | None = None,
    ) -> int:
        """Append one audit record, in ``conn``'s transaction when given; return its id."""
        action = AdminAction(action)
        stmt = (
            insert(AuditLogRow)
            .values(
                actor=printable(actor.id, 200),
                actor_role=actor.role.value,
                action=action.value,
                target_type=printable(target_type, 32),
                target_id=printable(target_id, 200),
                before=_jsonable(before),
                after=_jsonable(after),
                reason=printable(reason, 4 * MAX_REASON),
                request_id=printable(current_request_id(), 64),
                source=actor.source.value,
                outcome=outcome.value,
                detail=printable(detail, 2000),
                intent_id=intent_id,
            )
            .returning(AuditLogRow.id)
        )
        if conn is not None:
            row_id = int(conn.execute(stmt).scalar_one())
        else:
            with self.db.write() as own:
                own.execute(DURABLE)
                row_id = int(own.execute(stmt).scalar_one())
        ADMIN_ACTIONS.labels(action=action.value, outcome=outcome.value).inc()
        return row_id

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
        external: bool = False,
        check: Callable[[], object] | None = None,
        timeout_seconds: float | None = -1.0,
    ) -> Iterator[AuditedAction]:
        """Run an admin action: check the permission, the throttle and the input, act, record the outcome.

        A denied, throttled or invalid attempt is recorded in its own transaction and the error is
        raised again; ``check`` validates the input before anything happens. A database-only
        action records its success in the action's own transaction, so the change and its row
        commit together. An ``external`` action (its effect lies in Redis or Unleash) first
        commits a ``pending`` intent, then runs, then records its outcome naming the intent.
        ``timeout_seconds`` bounds the action's transaction (None: no bound, for a long recompute).
        """
        action = AdminAction(action)
        common: dict[str, Any] = {"actor": actor, "action": action, "target_type": target_type}
        try:
            require(actor, permission)
        except PermissionDenied as exc:
            self.record(**common, target_id=target_id, outcome=AuditOutcome.DENIED, reason=reason, detail=str(exc))
            raise
        if self.throttle is not None:
            try:
                self.throttle.take(actor.id, action)
            except ActionThrottled as exc:
                self.record(**common, target_id=target_id, outcome=AuditOutcome.DENIED, reason=reason, detail=str(exc))
                raise
        cleaned = (reason or "").strip()
        try:
            refuse_control_characters("The reason", cleaned)
            refuse_control_characters("The target", target_id)
            if reason_required and not cleaned:
                raise InvalidInput("Give a reason for this change; it goes into the audit log.")
            if len(cleaned) > MAX_REASON:
                raise InvalidInput(f"The reason may be at most {MAX_REASON:,} characters.")
            if check is not None:
                check()
        except InvalidInput as exc:
            self.record(
                **common, target_id=target_id, outcome=AuditOutcome.INVALID, reason=cleaned or None, detail=str(exc)
            )
            raise
        intent_id = None
        if external:
            intent_id = self.record(**common, target_id=target_id, outcome=AuditOutcome.PENDING, reason=cleaned or None)
        state: AuditedAction | None = None
        try:
            with self.db.write(timeout_seconds=timeout_seconds) as conn:
                conn.execute(DURABLE)
                state = AuditedAction(conn=conn, intent_id=intent_id)
                yield state
                self.record(
                    **common,
                    target_id=state.target_id or target_id,
                    outcome=AuditOutcome.SUCCESS,
                    before=state.before,
                    after=state.after,
                    reason=cleaned or None,
                    intent_id=intent_id,
                    conn=conn,
                )
        except InvalidInput as exc:
            self.record(
                **common,
                target_id=target_id,
                outcome=AuditOutcome.INVALID,
                reason=cleaned,
                detail=str(exc),
                intent_id=intent_id,
            )
            raise
        except DatabaseUnavailable:
            # Nothing can be recorded now: the action's transaction is lost with its change, and an
            # external action's intent stays pending until the reaper closes it as unknown.
            raise
        except Exception as exc:
            unanswered = external and _may_have_applied(exc)
            self.record(
                **common,
                target_id=target_id,
                outcome=AuditOutcome.UNKNOWN if unanswered else AuditOutcome.FAILED,
                before=state.before if state else None,
                reason=cleaned or None,
                detail=(
                    f"no answer, the change may have been made: {exc.__class__.__name__}: {exc}"
                    if unanswered
                    else f"{exc.__class__.__name__}: {exc}"
                ),
                intent_id=intent_id,
            )
            raise
        self.events.publish(
            action.value,
            {"actor": actor.id, "target_type": target_type, "target_id": state.target_id or target_id},
        )

    def reap(self, *, now: datetime | None = None) -> int:
        """Close every intent older than ``reap_after`` that has no outcome as ``unknown``; return how many."""
        cutoff = (now or datetime.now(UTC)) - self.reap_after
        intent = aliased(AuditLogRow)
        outcome = aliased(AuditLogRow)
        stale = (
            select(
                intent.actor,
                intent.actor_role,
                intent.action,
                intent.target_type,
                intent.target_id,
                intent.reason,
                intent.request_id,
                intent.source,
                literal(AuditOutcome.UNKNOWN.value),
                literal(
                    f"No outcome was recorded within {self.reap_after.total_seconds() / 60:g} minutes of the intent: "
                    "the change may or may not have happened; check the target."
                ),
                intent.id,
            )
            .where(
                intent.outcome == AuditOutcome.PENDING.value,
                intent.at < cutoff,
                ~exists().where(outcome.intent_id == intent.id),
            )
            .order_by(intent.id)
        )
        columns = [
            "actor",
            "actor_role",
            "action",
            "target_type",
            "target_id",
            "reason",
            "request_id",
            "source",
            "outcome",
            "detail",
            "intent_id",
        ]
        with self.db.write() as conn:
            # One reaper at a time, so an intent is never closed twice.
            conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('krowoc.audit_log.reaper'))"))
            closed = conn.execute(insert(AuditLogRow).from_select(columns, stale).returning(AuditLogRow.id)).all()
            return len(closed)

    # -- reading ------------------------------------------------------------------------------

    def _allowed(self, reader: Actor) -> None:
        try:
            require(reader, Permission.VIEW_AUDIT_LOG)
        except PermissionDenied as exc:
            self.record(
                actor=reader,
                action=AdminAction.AUDIT_READ,
                target_type="audit_log",
                target_id="*",
                outcome=AuditOutcome.DENIED,
                detail=str(exc),
            )
            raise

    def latest(self, reader: Actor, *, limit: int = 1) -> list[AuditRecord]:
        """Return the newest audit records, newest first, to a member of staff allowed to read them."""
        return self.search(reader, limit=limit)

    def search(
        self,
        reader: Actor,
        *,
        actor: str | None = None,
        action: str | None = None,
        target_type: str | None = None,
        target_id: str | None = None,
        outcome: AuditOutcome | str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before_id: int | None = None,
        limit: int = 200,
    ) -> list[AuditRecord]:
        """Return the records matching every given filter, newest first, to a reader allowed to see them.

        Every filter is applied in SQL before the limit; ``before_id`` pages back through older
        records (keyset: pass the last id of the page seen). A refused reader is recorded as denied.
        """
        self._allowed(reader)
        if not 1 <= limit <= PAGE_LIMIT:
            raise InvalidInput(f"An audit page holds 1 to {PAGE_LIMIT:,} records, not {limit}.")
        stmt = select(AuditLogRow).order_by(AuditLogRow.id.desc()).limit(limit)
        conditions = []
        if actor:
            conditions.append(AuditLogRow.actor == actor)
        if action:
            conditions.append(AuditLogRow.action == action)
        if target_type:
            conditions.append(AuditLogRow.target_type == target_type)
        if target_id:
            conditions.append(AuditLogRow.target_id == target_id)
        if outcome:
            conditions.append(AuditLogRow.outcome == AuditOutcome(outcome).value)
        if since:
            conditions.append(AuditLogRow.at >= since)
        if until:
            conditions.append(AuditLogRow.at < until)
        if before_id is not None:
            conditions.append(AuditLogRow.id < before_id)
        if conditions:
            stmt = stmt.where(and_(*conditions))
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

    def unresolved(self, *, since: timedelta = timedelta(hours=24), now: datetime | None = None) -> tuple[int, int]:
        """Return the ``unknown`` outcomes of the last ``since``, and the intents waiting past ``reap_after``."""
        moment = now or datetime.now(UTC)
        intent = aliased(AuditLogRow)
        outcome = aliased(AuditLogRow)
        unknown = select(AuditLogRow.id).where(
            AuditLogRow.outcome == AuditOutcome.UNKNOWN.value, AuditLogRow.at >= moment - since
        )
        waiting = select(intent.id).where(
            intent.outcome == AuditOutcome.PENDING.value,
            intent.at < moment - self.reap_after,
            ~exists().where(outcome.intent_id == intent.id),
        )
        with self.db.read() as conn:
            unknown_count = len(conn.execute(unknown.limit(10_000)).all())
            waiting_count = len(conn.execute(waiting.limit(10_000)).all())
        return unknown_count, waiting_count

    # -- the chain ------------------------------------------------------------------------------

    def head(self) -> tuple[int, str] | None:
        """Return the id and hash of the chain's newest row, or None for an empty log."""
        with self.db.read() as conn:
            row = conn.execute(
                select(AuditLogRow.id, AuditLogRow.hash).order_by(AuditLogRow.id.desc()).limit(1)
            ).first()
        return None if row is None or row.hash is None else (int(row.id), str(row.hash))

    def verify(self, *, since_id: int = 0, timeout_ms: int = 600_000) -> ChainVerdict:
        """Recompute the chain from ``since_id`` on; name the first row that does not follow from the one before."""
        with self.db.read(timeout_ms=timeout_ms) as conn:
            before = conn.execute(
                text("SELECT hash FROM audit_log WHERE id < :since ORDER BY id DESC LIMIT 1"), {"since": since_id}
            ).first()
            previous_hash = None if before is None else before.hash
            rows = 0
            head_id: int | None = None
            head_hash: str | None = None
            first_break: ChainBreak | None = None
            result = conn.execution_options(stream_results=True, yield_per=10_000).execute(VERIFY, {"since": since_id})
            for row in result:
                expected_previous = previous_hash if rows == 0 else row.previous
                rows += 1
                head_id, head_hash = int(row.id), row.hash
                if row.prev_hash != expected_previous:
                    first_break = ChainBreak(int(row.id), "it does not name the hash of the row before it")
                elif row.hash != row.expected:
                    first_break = ChainBreak(int(row.id), "its content does not match its hash")
                if first_break is not None:
                    break
            result.close()
        return ChainVerdict(rows=rows, first_break=first_break, head_id=head_id, head_hash=head_hash)
