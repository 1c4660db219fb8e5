"""The Leaderboards page: the board and window in the link, the ranking through the cache tier, the recompute.

The link names the board and window (``?board=user|prompt&window=day|week|all``) so a ranking
can be shared.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.domain.models import Actor
from core.domain.rbac import Permission, can
from core.leaderboards import (
    Leaderboard,
    LeaderboardRecompute,
    LeaderboardRefreshReport,
    Subject,
    Window,
    parse_subject,
    parse_window,
)
from dashboard import widgets
from dashboard.services import services
from queries.executions import MAX_TEXT

SUBJECT_NAMES = {Subject.USER: "Top users", Subject.PROMPT: "Top prompts"}
WINDOW_NAMES = {Window.DAY: "Day", Window.WEEK: "Week", Window.ALL: "All time"}


def board_from_link() -> tuple[Subject, Window]:
    """Return the board and window the link names (``?board=user|prompt&window=day|week|all``)."""
    subject = st.session_state.get("leaderboards.subject") or Subject.USER
    window = st.session_state.get("leaderboards.window") or Window.WEEK
    if "board" in st.query_params:
        subject = parse_subject(st.query_params["board"][:MAX_TEXT])
    if "window" in st.query_params:
        window = parse_window(st.query_params["window"][:MAX_TEXT])
    return Subject(subject), Window(window)


def write_board_link(subject: Subject | None, window: Window | None) -> None:
    """Put the board and window shown into the link."""
    st.query_params["board"] = (subject or Subject.USER).value
    st.query_params["window"] = (window or Window.WEEK).value


def leaderboard(subject: Subject, window: Window) -> Leaderboard | None:
    """Return the newest ranking of a board through the cache tier."""
    return services().leaderboards.top(subject, window)


def board_frame(board: Leaderboard) -> pd.DataFrame:
    """Return a board's rows as a table."""
    return pd.DataFrame(
        {
            "rank": [row.rank for row in board.rows],
            board.subject.value: [row.name for row in board.rows],
            "id": [row.subject_id for row in board.rows],
            "average score": [float(row.avg_score) for row in board.rows],
            "scored executions": [row.executions for row in board.rows],
        }
    )


def may_refresh(actor: Actor) -> bool:
    """Tell whether the actor may recompute the leaderboards."""
    return can(actor, Permission.RECOMPUTE_LEADERBOARDS)


def refresh(actor: Actor, reason: str) -> LeaderboardRefreshReport:
    """Recompute every leaderboard now, as the actor (audited)."""
    return services().leaderboards.refresh(actor, LeaderboardRecompute.of(reason=widgets.audit_reason(reason)))
