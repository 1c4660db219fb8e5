"""Leaderboards: the top users and prompts per window (day, week, all time) by average score.

The rule, shown on the page as ``RULE``: a subject (a user, or a prompt) is ranked by the average
quality score of its scored executions in the window, and only with at least ``MIN_EXECUTIONS``
scored executions there. The average is rounded to four decimals; equal averages are ordered by
more scored executions first, then by the lower id, so a ranking never depends on scan order.

Rankings are computed from the raw executions into ``leaderboard_snapshots`` (the top ``TOP_N``
of each subject type and window, all stamped with one ``computed_at``), by ``krowoc-admin
leaderboards refresh`` on a schedule or by an operator on the Leaderboards page. Pages read the
newest snapshot through the leaderboard cache tier (5-15 min in Redis).
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import TypeAdapter
from sqlalchemy import Connection, text

from core.adapters.db import Database
from core.audit import AuditLog
from core.cache import CachedLeaderboards
from core.domain.actions import AdminAction
from core.domain.exceptions import InvalidInput
from core.domain.models import Actor
from core.domain.rbac import Permission
from core.leaderboards.models import (
    KEEP_SNAPSHOTS_FOR,
    MIN_EXECUTIONS,
    TOP_N,
    WINDOW_SPANS,
    Leaderboard,
    LeaderboardRecompute,
    LeaderboardRefreshReport,
    LeaderboardRow,
    Subject,
    Window,
)

_COLUMN = {Subject.USER: "user_id", Subject.PROMPT: "prompt_id"}

COMPUTE = """
INSERT INTO leaderboard_snapshots
    (computed_at, subject_type, time_window, rank, subject_id, avg_score, executions, min_executions)
SELECT :at, :subject, :window,
       row_number() OVER (ORDER BY avg_score DESC, executions DESC, subject_id),
       subject_id, avg_score, executions, :minimum
FROM (
    SELECT {column} AS subject_id, round(avg(score), 4) AS avg_score, count(*) AS executions
    FROM prompt_executions
    WHERE score IS NOT NULL AND created_at >= :since AND created_at < :at
    GROUP BY {column}
    HAVING count(*) >= :minimum
) ranked
ORDER BY avg_score DESC, executions DESC, subject_id
LIMIT :top
"""


def compute(conn: Connection, at: datetime) -> dict[str, int]:
    """Write a snapshot of every subject type and window stamped ``at``; return the rows per board."""
    written: dict[str, int] = {}
    for window, span in WINDOW_SPANS.items():
        since = datetime(1970, 1, 1, tzinfo=UTC) if span is None else at - span
        for subject in Subject:
            result = conn.execute(
                text(COMPUTE.format(column=_COLUMN[subject])),
                {
                    "at": at,
                    "subject": subject.value,
                    "window": window.value,
                    "minimum": MIN_EXECUTIONS[window],
                    "since": since,
                    "top": TOP_N,
                },
            )
            written[f"{subject.value}/{window.value}"] = result.rowcount
    conn.execute(
        text("DELETE FROM leaderboard_snapshots WHERE computed_at < :cutoff"), {"cutoff": at - KEEP_SNAPSHOTS_FOR}
    )
    return written


LATEST = """
SELECT s.computed_at, s.rank, s.subject_id, s.avg_score, s.executions, s.min_executions, {name} AS name
FROM leaderboard_snapshots s {join}
WHERE s.subject_type = :subject AND s.time_window = :window
  AND s.computed_at = (SELECT max(computed_at) FROM leaderboard_snapshots
                       WHERE subject_type = :subject AND time_window = :window)
ORDER BY s.rank
LIMIT :limit
"""
_NAMES = {
    Subject.USER: ("coalesce(u.email, '#' || s.subject_id)", "LEFT JOIN users u ON u.id = s.subject_id"),
    Subject.PROMPT: (
        "coalesce(p.title || ' (v' || p.version || ')', '#' || s.subject_id)",
        "LEFT JOIN prompts p ON p.id = s.subject_id",
    ),
}
_BOARD = TypeAdapter(Leaderboard | None)


def latest_from_table(conn: Connection, subject: Subject, window: Window, *, limit: int = TOP_N) -> Leaderboard | None:
    """Read the newest snapshot of a board with names straight from the snapshot table, or None."""
    name, join = _NAMES[subject]
    rows = (
        conn.execute(
            text(LATEST.format(name=name, join=join)),
            {"subject": subject.value, "window": window.value, "limit": limit},
        )
        .mappings()
        .all()
    )
    if not rows:
        return None
    return Leaderboard(
        subject=subject,
        window=window,
        computed_at=rows[0]["computed_at"],
        min_executions=rows[0]["min_executions"],
        rows=[LeaderboardRow.model_validate(dict(row)) for row in rows],
    )


class LeaderboardService:
    """Recompute the leaderboards (audited) and read the newest ones through the cache tier."""

    def __init__(self, db: Database, audit: AuditLog, cached: CachedLeaderboards | None = None) -> None:
        self.db = db
        self.audit = audit
        self.cached = cached

    def top(self, subject: Subject, window: Window, *, limit: int = 50) -> Leaderboard | None:
        """Return the newest ranking of a board (its top ``limit`` rows), or None when never computed."""
        if not 1 <= limit <= TOP_N:
            raise InvalidInput(f"A leaderboard shows 1 to {TOP_N} rows, not {limit}.")
        if self.cached is None:
            return self.from_table(subject, window, limit=limit)
        return self.cached.read(
            "board",
            subject.value,
            window.value,
            limit,
            load=lambda: self.from_table(subject, window, limit=limit),
            adapter=_BOARD,
        )

    def from_table(self, subject: Subject, window: Window, *, limit: int = 50) -> Leaderboard | None:
        """Read the newest ranking from the snapshot table, bypassing the cache."""
        with self.db.read() as conn:
            return latest_from_table(conn, subject, window, limit=limit)

    def refresh(
        self, actor: Actor, request: LeaderboardRecompute | None = None, *, now: datetime | None = None
    ) -> LeaderboardRefreshReport:
        """Recompute every leaderboard from the executions now, and drop the cached ones."""
        at = (now or datetime.now(UTC)).astimezone(UTC)
        with self.audit.action(
            actor,
            AdminAction.LEADERBOARDS_RECOMPUTE,
            permission=Permission.RECOMPUTE_LEADERBOARDS,
            target_type="leaderboards",
            target_id="all",
            reason=(request or LeaderboardRecompute()).reason,
            reason_required=False,
            timeout_seconds=None,  # a recompute reads every scored execution; its own statement timeout is off too
        ) as action:
            # One refresh at a time; a second waits and then writes its own snapshot.
            action.conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('krowoc.leaderboards.refresh'))"))
            previous = action.conn.execute(text("SELECT max(computed_at) FROM leaderboard_snapshots")).scalar()
            action.conn.execute(text("SET LOCAL statement_timeout = 0"))
            rows = compute(action.conn, at)
            action.before = {"computed_at": previous}
            action.after = {"computed_at": at, "rows": rows}
        if self.cached is not None:
            self.cached.forget_all()
        return LeaderboardRefreshReport(computed_at=at, rows=rows)
