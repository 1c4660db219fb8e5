"""What the leaderboards rank and how: subjects, windows, the rule, and the boards read back."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from core.domain.exceptions import InvalidInput
from core.domain.models import ActionRequest


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


class LeaderboardRecompute(ActionRequest):
    """Recompute every leaderboard now; the reason, optional, goes into the audit log."""


class LeaderboardRefreshReport(BaseModel):
    """When a recompute ran and how many rows each board got."""

    model_config = ConfigDict(frozen=True)

    computed_at: datetime
    rows: dict[str, int]
