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

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

import typer
from pydantic import BaseModel, ConfigDict, TypeAdapter
from sqlalchemy import Connection, text

from core.audit import AuditLog
from core.cache import CachedLeaderboards
from core.db import Database
from core.models import Actor, AuditSource, InvalidInput, Role
from core.rbac import Permission


class Subject(StrEnum):
    USER = "user"
    PROMPT = "prompt"


class Window(StrEnum):
    DAY = "day"
    WEEK = "week"
    ALL = "all"


WINDOW_SPANS: dict[Window, timedelta | None] = {
    Window.DAY: timedelta(days=1),
    Window.WEEK: timedelta(days=7),
    Window.ALL: None,
}
MIN_EXECUTIONS: dict[Window, int] = {Window.DAY: 5, Window.WEEK: 20, Window.ALL: 50}
TOP_N = 100
KEEP_SNAPSHOTS_FOR = timedelta(days=7)
RULE = (
    "Ranked by the average quality score (0 to 1) of scored executions in the window, with at least "
    "{minimum} scored executions ({window}). Equal averages (to four decimals): more scored executions "
    "first, then the lower id."
)
WINDOW_LABELS = {Window.DAY: "last 24 hours", Window.WEEK: "last 7 days", Window.ALL: "all time"}


def rule_for(window: Window) -> str:
    """Say in words how a window's ranking is made."""
    return RULE.format(minimum=MIN_EXECUTIONS[window], window=WINDOW_LABELS[window])


def parse_window(value: str) -> Window:
    """Read a window name (day, week or all)."""
    try:
        return Window(value.strip().lower())
    except ValueError:
        raise InvalidInput(f"Unknown leaderboard window “{value.strip()[:40]}”; use day, week or all.") from None


def parse_subject(value: str) -> Subject:
    """Read a subject name (user or prompt)."""
    try:
        return Subject(value.strip().lower())
    except ValueError:
        raise InvalidInput(f"Unknown leaderboard “{value.strip()[:40]}”; use user or prompt.") from None


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


class LeaderboardRow(BaseModel):
    """One ranked user or prompt, with the name support recognises."""

    model_config = ConfigDict(frozen=True)

    rank: int
    subject_id: int
    name: str
    avg_score: Decimal
    executions: int


class Leaderboard(BaseModel):
    """The newest ranking of a subject type over a window."""

    model_config = ConfigDict(frozen=True)

    subject: Subject
    window: Window
    computed_at: datetime
    min_executions: int
    rows: list[LeaderboardRow]


class RefreshReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    computed_at: datetime
    rows: dict[str, int]


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

    def refresh(self, actor: Actor, *, reason: str = "", now: datetime | None = None) -> RefreshReport:
        """Recompute every leaderboard from the executions now, and drop the cached ones."""
        at = (now or datetime.now(UTC)).astimezone(UTC)
        with self.audit.action(
            actor,
            "recompute_leaderboards",
            permission=Permission.RECOMPUTE_LEADERBOARDS,
            target_type="leaderboards",
            target_id="all",
            reason=reason,
            reason_required=False,
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
        return RefreshReport(computed_at=at, rows=rows)


# -- command line: ``krowoc-admin leaderboards refresh`` ----------------------------------------

cli = typer.Typer(help="Recompute the leaderboard snapshots.", no_args_is_help=True)


@cli.command("refresh")
def refresh_command(
    reason: Annotated[str, typer.Option(help="Why, for the audit log.")] = "scheduled refresh",
    actor: Annotated[str, typer.Option(help="Who runs it, for the audit log.")] = "scheduler",
) -> None:
    """Recompute the top users and prompts of every window (run it on a schedule, e.g. every 10 minutes)."""
    from core.bootstrap import build_services

    services = build_services()
    try:
        who = Actor(id=f"cli:{actor.strip() or 'scheduler'}", role=Role.OPERATOR, source=AuditSource.CLI)
        report = services.leaderboards.refresh(who, reason=reason)
    finally:
        services.close()
    shown = ", ".join(f"{board} {count}" for board, count in report.rows.items())
    typer.echo(f"Leaderboards computed at {report.computed_at:%Y-%m-%d %H:%M:%S} UTC: {shown} rows.")
