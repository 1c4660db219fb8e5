"""The Users page: the search and the chosen user in the link, their profile, usage, bucket, flags and actions.

The link holds the search text (``?q=``) and the user opened (``?user=``), so a user's page can be
pasted into a ticket.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st

from core.domain.exceptions import InvalidInput, RedisUnavailable, UnleashUnavailable
from core.domain.models import Actor, Tier, TimeWindow, User, UserStatus
from core.flags.models import FlagError
from core.ratelimit import BucketState, RateLimitReset
from core.users import TierChange, UserStatusChange
from dashboard import widgets
from dashboard.executions import MAX_BOX, STUCK
from dashboard.services import services
from queries import executions as execution_queries
from queries import users as user_queries
from queries.executions import ExecutionFilters

USER_PARAM = "user"
QUERY_PARAM = "q"
USAGE_DAYS = 30
RECENT_EXECUTIONS = 20
TIERS = [t.value for t in Tier]
STUCK_STATUSES = ", ".join(s.value for s in STUCK)


# -- the search in the link -----------------------------------------------------------------------


def linked_query() -> str:
    """Return the search text the link holds (``?q=``)."""
    return st.query_params.get(QUERY_PARAM, "")


def linked_user_id() -> int | None:
    """Return the id of the user the link opens (``?user=``), if any."""
    value = st.query_params.get(USER_PARAM)
    if not value:
        return None
    return execution_queries.parse_id(value[: MAX_BOX + 1], what="user id")


def write_user_link(*, query: str, user_id: int | None) -> None:
    """Put the search text and the chosen user into the link."""
    cleaned = query.strip()
    if len(cleaned) > MAX_BOX:
        raise InvalidInput(f"That is {len(cleaned):,} characters; an email, id or name has at most {MAX_BOX}.")
    if cleaned:
        st.query_params[QUERY_PARAM] = cleaned
    elif QUERY_PARAM in st.query_params:
        del st.query_params[QUERY_PARAM]
    if user_id is not None:
        st.query_params[USER_PARAM] = str(user_id)
    elif USER_PARAM in st.query_params:
        del st.query_params[USER_PARAM]


def find_users(text: str) -> list[User]:
    """Find users by email, id or name prefix (bad text raises ``InvalidInput``)."""
    lookup = user_queries.parse_lookup(text)
    with services().db.read() as conn:
        return user_queries.find_users(conn, lookup)


def pick_label(user: User) -> str:
    """Write one match of a search for its button."""
    return f"{user.email} · {user.display_name} · {user.tier.value} · #{user.id}"


# -- one user -------------------------------------------------------------------------------------


def user(user_id: int) -> User:
    """Return a user's profile through the user cache tier; an unknown id raises ``InvalidInput``."""
    found = services().cached_users.profile(user_id)
    if found is None:
        raise InvalidInput(f"No user has the id {user_id}.")
    return found


@dataclass(frozen=True)
class Usage:
    """A user's executions, errors and cost per day over the last days, and their sums."""

    per_day: pd.DataFrame
    executions: int
    errors: int
    cost_usd: float


def usage(user_id: int, days: int = USAGE_DAYS) -> Usage:
    """Return a user's executions, errors and cost per day over the last ``days`` days, and their sums."""
    window = TimeWindow.last(timedelta(days=days), now=datetime.now(UTC))
    with services().db.read() as conn:
        per_day = user_queries.usage_over_time(conn, user_id, window)
    return Usage(
        per_day=per_day,
        executions=int(per_day["executions"].sum()),
        errors=int(per_day["errors"].sum()),
        cost_usd=float(per_day["cost_usd"].sum()),
    )


def recent_executions(user_id: int, *, days: int = USAGE_DAYS, limit: int = RECENT_EXECUTIONS) -> pd.DataFrame:
    """Return a user's newest executions."""
    window = TimeWindow.last(timedelta(days=days), now=datetime.now(UTC))
    with services().db.read() as conn:
        return execution_queries.search(conn, ExecutionFilters(window=window, user_id=user_id), limit=limit).rows


def rate_limit_bucket(actor: Actor, found: User) -> BucketState | None:
    """Return the user's token bucket as it is now, or None when Redis does not answer."""
    try:
        return services().rate_limits.bucket(actor, found.id)
    except RedisUnavailable:
        # Only the bucket lives in Redis: the page says it cannot be shown and shows the rest.
        return None


def describe_bucket(bucket: BucketState) -> str:
    """Say how full a bucket is and how fast it refills."""
    state = "never used or expired: full" if bucket.untouched else f"{bucket.tokens:,.1f} of {bucket.burst:,} tokens"
    return f"{state} · refills {bucket.rate_per_second:g}/s on the {bucket.tier.value} tier"


def flag_evaluations(found: User) -> tuple[pd.DataFrame | None, str | None]:
    """Return what every known flag evaluates to for the user, or why it cannot be told (Unleash away)."""
    context = {"userId": str(found.id), "properties": {"tier": found.tier.value, "email": found.email}}
    try:
        evaluations = services().flags.evaluate_all(context)
    except (FlagError, UnleashUnavailable) as exc:
        # Only the flags come from Unleash: the page says why they cannot be told and shows the rest.
        return None, str(exc)
    frame = pd.DataFrame(
        {
            "flag": [e.name for e in evaluations],
            "on for this user": [e.enabled for e in evaluations],
            "default": [e.default for e in evaluations],
            "known to Unleash": [e.known_to_client for e in evaluations],
        }
    )
    return frame, None


# -- actions (each audited in core) ---------------------------------------------------------------


def change_tier(actor: Actor, user_id: int, tier: str, reason: str) -> User:
    """Move a user to another tier (audited)."""
    try:
        wanted = Tier(tier)
    except ValueError:
        raise InvalidInput(f"Unknown tier “{tier[:40]}”; use one of {', '.join(TIERS)}.") from None
    request = TierChange.of(user_id=user_id, tier=wanted, reason=widgets.audit_reason(reason))
    return services().users.change_tier(actor, request)


def suspend(actor: Actor, user_id: int, reason: str) -> User:
    """Suspend a user (audited); their sessions and cached profile are dropped."""
    request = UserStatusChange.of(user_id=user_id, reason=widgets.audit_reason(reason))
    return services().users.suspend(actor, request)


def restore(actor: Actor, user_id: int, reason: str) -> User:
    """Restore a suspended user (audited)."""
    request = UserStatusChange.of(user_id=user_id, reason=widgets.audit_reason(reason))
    return services().users.restore(actor, request)


def switch_status(actor: Actor, found: User, reason: str) -> User:
    """Suspend an active user or restore a suspended one (audited)."""
    if found.status is UserStatus.SUSPENDED:
        return restore(actor, found.id, reason)
    return suspend(actor, found.id, reason)


def reset_rate_limit(actor: Actor, found: User, reason: str) -> BucketState:
    """Refill a user's token bucket (audited)."""
    request = RateLimitReset.of(user_id=found.id, reason=widgets.audit_reason(reason))
    return services().rate_limits.reset(actor, request)
