"""Support's reads about platform users: find one by email, id or name prefix, and their usage.

Finding a user reads ``users`` through its expression indexes ``ix_users_email_lower`` and
``ix_users_display_name_lower`` (``lower(...) text_pattern_ops``), so a prefix search is an index
range scan whatever the number of users. Usage over time reads the user's raw executions through
``ix_prompt_executions_user_id_created_at``, one row per UTC day.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

import pandas as pd
from sqlalchemy import Connection, text

from core.domain.exceptions import InvalidInput
from core.domain.models import TimeWindow, User
from queries.executions import MAX_ID, MAX_SEARCH_SPAN, MAX_TEXT, parse_id

MAX_MATCHES = 50
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class LookupKind(StrEnum):
    """How a search box's text is read."""

    ID = "id"
    EMAIL = "email"
    EMAIL_PREFIX = "email prefix"
    NAME_PREFIX = "name prefix"


@dataclass(frozen=True)
class UserLookup:
    """What a person typed to find a user, read as an id, an email or a prefix."""

    kind: LookupKind
    value: str

    @property
    def user_id(self) -> int | None:
        return int(self.value) if self.kind is LookupKind.ID else None


def _quote(value: str) -> str:
    shown = value if len(value) <= 40 else value[:40] + "…"
    return f"“{shown}”"


def parse_lookup(value: str) -> UserLookup:
    """Read a search box: digits are an id, text with ``@`` an email (or its start), else a name prefix."""
    cleaned = value.strip()
    if not cleaned:
        raise InvalidInput("Enter a user's email, id or the start of their name.")
    if len(cleaned) > MAX_TEXT:
        raise InvalidInput(f"That is {len(cleaned):,} characters; an email, id or name has at most {MAX_TEXT}.")
    if any(ch in cleaned for ch in "\x00\r\n\t"):
        raise InvalidInput("Search text may not contain control characters (tabs or line breaks).")
    if cleaned.isdigit():
        return UserLookup(LookupKind.ID, str(parse_id(cleaned, what="user id")))
    if "@" in cleaned:
        if _EMAIL.match(cleaned):
            return UserLookup(LookupKind.EMAIL, cleaned.lower())
        if cleaned.count("@") == 1 and not cleaned.startswith("@") and " " not in cleaned:
            return UserLookup(LookupKind.EMAIL_PREFIX, cleaned.lower())
        raise InvalidInput(f"{_quote(cleaned)} is not an email address such as ada@example.com.")
    if len(cleaned) < 2:
        raise InvalidInput("Type at least two letters of the name.")
    return UserLookup(LookupKind.NAME_PREFIX, cleaned.lower())


def parse_user_ref(value: str) -> UserLookup:
    """Read a user named exactly, by id or full email (as in an execution search or a link)."""
    lookup = parse_lookup(value)
    if lookup.kind not in (LookupKind.ID, LookupKind.EMAIL):
        raise InvalidInput(f"Name the user by id (a number) or by full email address, not {_quote(value.strip())}.")
    return lookup


def _like_prefix(value: str) -> str:
    # The text is data, never SQL: it is a bound parameter; only LIKE's own wildcards need escaping.
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


USER_COLUMNS = "id, email, display_name, tier, status, created_at, last_seen_at"

FIND = {
    LookupKind.ID: f"SELECT {USER_COLUMNS} FROM users WHERE id = :value",
    LookupKind.EMAIL: f"SELECT {USER_COLUMNS} FROM users WHERE lower(email) = :value",
    LookupKind.EMAIL_PREFIX: f"""
        SELECT {USER_COLUMNS} FROM users WHERE lower(email) LIKE :value ESCAPE '\\'
        ORDER BY lower(email), id LIMIT :limit""",
    LookupKind.NAME_PREFIX: f"""
        SELECT {USER_COLUMNS} FROM users WHERE lower(display_name) LIKE :value ESCAPE '\\'
        ORDER BY lower(display_name), id LIMIT :limit""",
}


def find_users(conn: Connection, lookup: UserLookup, *, limit: int = MAX_MATCHES) -> list[User]:
    """Return the users a lookup matches: one for an id or email, up to ``limit`` for a prefix."""
    value: str | int = lookup.value
    if lookup.kind is LookupKind.ID:
        value = int(lookup.value)
    elif lookup.kind in (LookupKind.EMAIL_PREFIX, LookupKind.NAME_PREFIX):
        value = _like_prefix(lookup.value)
    rows = conn.execute(text(FIND[lookup.kind]), {"value": value, "limit": min(limit, MAX_MATCHES)}).mappings()
    return [User.model_validate(dict(row)) for row in rows]


def get_user(conn: Connection, user_id: int) -> User | None:
    """Return one user by id, or None."""
    if not 1 <= user_id <= MAX_ID:
        return None
    row = conn.execute(text(FIND[LookupKind.ID]), {"value": user_id}).mappings().first()
    return None if row is None else User.model_validate(dict(row))


def resolve_user_id(conn: Connection, lookup: UserLookup) -> int | None:
    """Return the id of the user an id or full email names, or None when nobody has it."""
    if lookup.kind is LookupKind.ID:
        return int(lookup.value)
    found = find_users(conn, lookup, limit=1)
    return found[0].id if found else None


USAGE = """
SELECT date_trunc('day', created_at, 'UTC') AS day,
       count(*) AS executions,
       count(*) FILTER (WHERE error_category IS NOT NULL) AS errors,
       coalesce(sum(cost_usd), 0) AS cost_usd
FROM prompt_executions
WHERE user_id = :user_id AND created_at >= :start AND created_at < :end
GROUP BY 1
ORDER BY 1
"""


def usage_over_time(conn: Connection, user_id: int, window: TimeWindow) -> pd.DataFrame:
    """Return one user's executions, errors (with an error category) and cost per UTC day."""
    if window.span > MAX_SEARCH_SPAN:
        raise InvalidInput(f"Usage can be shown for at most {MAX_SEARCH_SPAN.days} days at a time.")
    result = conn.execute(text(USAGE), {"user_id": user_id, "start": window.start, "end": window.end})
    frame = pd.DataFrame([tuple(r) for r in result], columns=["day", "executions", "errors", "cost_usd"])
    frame["cost_usd"] = frame["cost_usd"].astype(float)
    return frame
