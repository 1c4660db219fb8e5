"""Leaderboards: the top users and prompts per window, by average score, with the rule shown."""

from core.leaderboards.models import (
    MIN_EXECUTIONS,
    TOP_N,
    Leaderboard,
    LeaderboardRecompute,
    LeaderboardRefreshReport,
    LeaderboardRow,
    Subject,
    Window,
    parse_subject,
    parse_window,
    rule_for,
)
from core.leaderboards.service import LeaderboardService, compute, latest_from_table

__all__ = [
    "MIN_EXECUTIONS",
    "TOP_N",
    "Leaderboard",
    "LeaderboardRecompute",
    "LeaderboardRefreshReport",
    "LeaderboardRow",
    "LeaderboardService",
    "Subject",
    "Window",
    "compute",
    "latest_from_table",
    "parse_subject",
    "parse_window",
    "rule_for",
]
