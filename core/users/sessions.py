"""The platform's user sessions, which a suspension drops: where they live and how they are dropped."""

from __future__ import annotations

from typing import Protocol

import redis

from core.adapters.redis import RedisClient
from core.domain.exceptions import SessionStoreUnavailable


class UserSessions(Protocol):
    def drop(self, user_id: int) -> int:
        """Drop every platform session of a user; return how many there were."""
        ...


class RedisUserSessions:
    """The platform's sessions in Redis: ``{prefix}session:<sid>``, listed per user in a set.

    The set ``{prefix}user-sessions:{user:<id>}`` holds the ids of a user's open sessions; the API
    adds to it at login and removes at logout. Dropping reads the set and deletes each session and
    the set itself.
    """

    def __init__(self, client: RedisClient, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def index_key(self, user_id: int) -> str:
        """Return the key of the set of a user's session ids."""
        return f"{self.prefix}user-sessions:{{user:{int(user_id)}}}"

    def session_key(self, session_id: str) -> str:
        """Return the key of one session."""
        return f"{self.prefix}session:{session_id}"

    def open(self, user_id: int, session_id: str, data: str = "{}") -> None:
        """Store a session for a user (what the API does at login)."""
        pipe = self.client.pipeline()
        pipe.set(self.session_key(session_id), data)
        pipe.sadd(self.index_key(user_id), session_id)
        pipe.execute()

    def drop(self, user_id: int) -> int:
        """Delete every session of a user and the set listing them; return how many sessions there were."""
        try:
            ids = [
                sid.decode() if isinstance(sid, bytes) else str(sid)
                for sid in self.client.smembers(self.index_key(user_id))
            ]
            keys = [self.session_key(sid) for sid in ids]
            self.client.delete(self.index_key(user_id), *keys)
        except redis.RedisError as exc:
            raise SessionStoreUnavailable(
                "Redis did not answer, so the user's sessions could not be dropped; nothing was changed. "
                "Try again when Redis is back (see the Health page)."
            ) from exc
        return len(ids)
