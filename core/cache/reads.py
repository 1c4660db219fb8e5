"""Cached reads other code calls: user profiles, prompt metadata and leaderboard snapshots.

Each read goes memory tier -> Redis -> PostgreSQL (see ``core.cache.store``) and fails open to
PostgreSQL when Redis is down. After changing a user or a prompt, call ``forget(id)`` so the
next read sees the change at once (other instances within a second).

    services.cached_users.profile(42)            # User | None
    services.cached_prompts.metadata(7)          # Prompt | None
    services.cached_leaderboards.latest("user", "week", limit=50)   # LeaderboardSnapshot | None
    services.cached_leaderboards.read("top-prompts", window, load=..., adapter=...)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, TypeAdapter
from sqlalchemy import func, select

from core.adapters.db import Database
from core.adapters.tables import LeaderboardSnapshotRow, PromptRow, UserRow
from core.cache import keys
from core.cache.store import Cache
from core.domain.exceptions import InvalidInput
from core.domain.models import Prompt, User

T = TypeVar("T")
SubjectType = Literal["user", "prompt"]
LeaderboardWindow = Literal["day", "week", "all"]
MAX_LEADERBOARD_ROWS = 1000

_USER = TypeAdapter(User | None)
_PROMPT = TypeAdapter(Prompt | None)


class LeaderboardEntry(BaseModel):
    """One ranked user or prompt of a snapshot."""

    model_config = ConfigDict(from_attributes=True, frozen=True)

    rank: int
    subject_id: int
    avg_score: Decimal
    executions: int


class LeaderboardSnapshot(BaseModel):
    """The latest ranking of a subject type over a window, with the rule it was ranked by."""

    model_config = ConfigDict(frozen=True)

    subject_type: SubjectType
    time_window: LeaderboardWindow
    computed_at: datetime
    min_executions: int
    entries: list[LeaderboardEntry]


_SNAPSHOT = TypeAdapter(LeaderboardSnapshot | None)


class CachedUsers:
    """User profiles by id, through the user tier (1-4 h in Redis)."""

    def __init__(self, cache: Cache, db: Database) -> None:
        self.cache = cache
        self.db = db

    def profile(self, user_id: int) -> User | None:
        """Return a user's profile, or None when there is no such user (a cached answer too)."""
        return self.cache.get_or_load(keys.user_profile(user_id), lambda: self._load(user_id), _USER)

    def profiles(self, user_ids: Sequence[int]) -> dict[int, User | None]:
        """Return the profiles of several users, keyed by id."""
        return {user_id: self.profile(user_id) for user_id in dict.fromkeys(user_ids)}

    def forget(self, user_id: int) -> None:
        """Drop a user's cached profile (call after changing the user)."""
        self.cache.forget(keys.user_profile(user_id))

    def _load(self, user_id: int) -> User | None:
        with self.db.read() as conn:
            row = conn.execute(select(UserRow.__table__).where(UserRow.id == user_id)).one_or_none()
        return None if row is None else User.model_validate(row)


class CachedPrompts:
    """Prompt metadata by id, through the prompt tier (12-24 h in Redis)."""

    def __init__(self, cache: Cache, db: Database) -> None:
        self.cache = cache
        self.db = db

    def metadata(self, prompt_id: int) -> Prompt | None:
        """Return a prompt's metadata, or None when there is no such prompt (a cached answer too)."""
        return self.cache.get_or_load(keys.prompt_metadata(prompt_id), lambda: self._load(prompt_id), _PROMPT)

    def forget(self, prompt_id: int) -> None:
        """Drop a prompt's cached metadata (call after changing the prompt)."""
        self.cache.forget(keys.prompt_metadata(prompt_id))

    def _load(self, prompt_id: int) -> Prompt | None:
        with self.db.read() as conn:
            row = conn.execute(select(PromptRow.__table__).where(PromptRow.id == prompt_id)).one_or_none()
        return None if row is None else Prompt.model_validate(row)


class CachedLeaderboards:
    """Leaderboard reads through the leaderboard tier (5-15 min in Redis)."""

    def __init__(self, cache: Cache, db: Database) -> None:
        self.cache = cache
        self.db = db

    def latest(
        self, subject_type: SubjectType, window: LeaderboardWindow, *, limit: int = 100
    ) -> LeaderboardSnapshot | None:
        """Return the newest snapshot's top ``limit`` rows for a subject type and window, or None if never computed."""
        if subject_type not in ("user", "prompt"):
            raise InvalidInput(f"Unknown leaderboard subject {subject_type!r}: use 'user' or 'prompt'.")
        if window not in ("day", "week", "all"):
            raise InvalidInput(f"Unknown leaderboard window {window!r}: use 'day', 'week' or 'all'.")
        if not 1 <= limit <= MAX_LEADERBOARD_ROWS:
            raise InvalidInput(f"A leaderboard shows 1 to {MAX_LEADERBOARD_ROWS:,} rows, not {limit}.")
        return self.cache.get_or_load(
            keys.leaderboard_snapshot(subject_type, window, limit),
            lambda: self._load(subject_type, window, limit),
            _SNAPSHOT,
        )

    def read(self, name: str, *args: object, load: Callable[[], T], adapter: TypeAdapter[T]) -> T:
        """Return any leaderboard read through the tier, keyed by ``name`` and ``args`` (loaded by ``load``)."""
        return self.cache.get_or_load(keys.leaderboard_read(name, *args), load, adapter)

    def forget_all(self) -> int:
        """Invalidate every leaderboard read (after a recompute); return the namespace's new version."""
        return self.cache.bump_namespace(keys.Namespace.LEADERBOARD)

    def _load(self, subject_type: str, window: str, limit: int) -> LeaderboardSnapshot | None:
        table = LeaderboardSnapshotRow
        newest = (
            select(func.max(table.computed_at))
            .where(table.subject_type == subject_type, table.time_window == window)
            .scalar_subquery()
        )
        stmt = (
            select(table.__table__)
            .where(table.subject_type == subject_type, table.time_window == window, table.computed_at == newest)
            .order_by(table.rank)
            .limit(limit)
        )
        with self.db.read() as conn:
            rows = conn.execute(stmt).all()
        if not rows:
            return None
        return LeaderboardSnapshot(
            subject_type=subject_type,
            time_window=window,
            computed_at=rows[0].computed_at,
            min_executions=rows[0].min_executions,
            entries=[LeaderboardEntry.model_validate(row) for row in rows],
        )
