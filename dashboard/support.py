"""What the support pages (Executions, Users) and the Leaderboards page call: link parameters,
searches, and the audited actions of ``core``.

Filters live in the link's query string so a view can be pasted into a ticket. The names are the
ones the Errors page links with: ``user`` (id or email), ``status``, ``category``, ``provider``,
``model``, ``from`` and ``to`` (ISO 8601 UTC, read by ``widgets.time_window``), plus ``sort``
(time, latency, cost), ``order`` (desc, asc) and ``execution`` (the id of the one opened).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import pandas as pd
import streamlit as st

from core.domain.exceptions import DependencyUnavailable, InvalidInput, RedisUnavailable, SessionStoreUnavailable
from core.domain.models import Actor, ErrorCategory, ExecutionStatus, Tier, TimeWindow, User
from core.domain.rbac import Permission, can
from core.flags.models import FlagError
from core.leaderboards import (
    Leaderboard,
    LeaderboardRecompute,
    LeaderboardRefreshReport,
    Subject,
    Window,
    parse_subject,
    parse_window,
)
from core.leaderboards import rule_for as leaderboard_rule
from core.ratelimit import BucketState, RateLimitReset
from core.users import ExecutionCancel, Payload, PayloadReveal, TierChange, UserStatusChange
from dashboard import auth, time_range
from dashboard.services import services
from queries import executions as execution_queries
from queries import users as user_queries
from queries.executions import Cursor, ExecutionDetail, ExecutionFilters, ExecutionPage, SortKey
from queries.users import UserLookup

FILTER_PARAMS = ("user", "status", "category", "provider", "model", "sort", "order")
EXECUTION_PARAM = "execution"
MAX_BOX = execution_queries.MAX_TEXT
EXPORT_DIR = Path(tempfile.gettempdir()) / "krowoc-exports"
EXECUTIONS_PAGE = Path(__file__).resolve().parent.parent / "pages" / "executions.py"


def actor() -> Actor:
    """Return the signed-in member of staff."""
    return auth.current_actor()


# -- executions: link parameters ------------------------------------------------------------------


@dataclass(frozen=True)
class ExecutionParams:
    """An execution search as read from a link, every value checked but the user not yet looked up."""

    user: UserLookup | None = None
    status: ExecutionStatus | None = None
    category: ErrorCategory | None = None
    provider: str | None = None
    model: str | None = None
    sort: SortKey = SortKey.TIME
    descending: bool = True


def _present(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is None or not value.strip():
        return None
    if len(value) > MAX_BOX:
        raise InvalidInput(f"The {name} filter is {len(value):,} characters long; it may be at most {MAX_BOX}.")
    return value


def parse_execution_params(params: Mapping[str, str]) -> ExecutionParams:
    """Read and check the search filters of a link or of the form; bad values raise ``InvalidInput``."""
    user = _present(params, "user")
    status = _present(params, "status")
    category = _present(params, "category")
    provider = _present(params, "provider")
    model = _present(params, "model")
    sort = _present(params, "sort")
    order = (_present(params, "order") or "desc").strip().lower()
    if order not in ("desc", "asc"):
        raise InvalidInput(f"Unknown order “{order[:40]}”; use desc (newest, slowest or dearest first) or asc.")
    return ExecutionParams(
        user=user_queries.parse_user_ref(user) if user else None,
        status=execution_queries.parse_status(status) if status else None,
        category=execution_queries.parse_category(category) if category else None,
        provider=execution_queries.parse_name(provider, what="provider") if provider else None,
        model=execution_queries.parse_name(model, what="model") if model else None,
        sort=execution_queries.parse_sort(sort) if sort else SortKey.TIME,
        descending=order == "desc",
    )


def link_params() -> dict[str, str]:
    """Return the search filters the current link holds."""
    return {name: st.query_params[name] for name in FILTER_PARAMS if name in st.query_params}


def write_link(values: Mapping[str, str]) -> None:
    """Put the search filters into the link (empty values are removed)."""
    for name in FILTER_PARAMS:
        value = (values.get(name) or "").strip()
        if value:
            st.query_params[name] = value
        elif name in st.query_params:
            del st.query_params[name]
    if EXECUTION_PARAM in st.query_params:
        del st.query_params[EXECUTION_PARAM]


def opened_execution() -> int | None:
    """Return the id of the execution the link opens, if any (a bad id raises ``InvalidInput``)."""
    value = st.query_params.get(EXECUTION_PARAM)
    if not value:
        return None
    return execution_queries.parse_id(value[: MAX_BOX + 1], what="execution id")


def open_execution(execution_id: int) -> None:
    """Open one execution by putting its id into the link (a payload revealed before is masked again)."""
    st.session_state.pop(REVEALED_KEY, None)
    st.query_params[EXECUTION_PARAM] = str(execution_id)


def close_execution() -> None:
    """Close the opened execution and mask its payload again."""
    st.session_state.pop(REVEALED_KEY, None)
    if EXECUTION_PARAM in st.query_params:
        del st.query_params[EXECUTION_PARAM]


def filters_for(parsed: ExecutionParams, window: TimeWindow) -> ExecutionFilters:
    """Look up the named user and build the search; an unknown user raises ``InvalidInput``."""
    user_id = None
    if parsed.user is not None:
        with services().db.read() as conn:
            user_id = user_queries.resolve_user_id(conn, parsed.user)
        if user_id is None:
            raise InvalidInput(f"No user has the email {parsed.user.value}; check it, or search on the Users page.")
    return ExecutionFilters(
        window=window,
        user_id=user_id,
        status=parsed.status,
        category=parsed.category,
        provider=parsed.provider,
        model=parsed.model,
        sort=parsed.sort,
        descending=parsed.descending,
    )


# -- executions: reads ----------------------------------------------------------------------------

PAGES_KEY = "executions.pages"
SIGNATURE_KEY = "executions.signature"


def page_cursors(filters: ExecutionFilters) -> list[str]:
    """Return the cursor tokens of the pages shown so far for this search (new search: none).

    A search is the same while its filters and its time-range link are: a "last 7 days" window
    moves with the clock on every run, and paging must not start over when a minute turns.
    """
    time_range_link = {name: st.query_params[name] for name in time_range.LINK_PARAMS if name in st.query_params}
    search = (filters.user_id, filters.status, filters.category, filters.provider, filters.model, filters.sort)
    signature = repr((search, filters.descending, sorted(time_range_link.items())))
    if st.session_state.get(SIGNATURE_KEY) != signature:
        st.session_state[SIGNATURE_KEY] = signature
        st.session_state[PAGES_KEY] = []
    cursors: list[str] = st.session_state[PAGES_KEY]
    return cursors


def search(
    filters: ExecutionFilters, cursor_token: str | None, *, limit: int = execution_queries.PAGE_SIZE
) -> ExecutionPage:
    """Return one page of the search, after the page that ended at ``cursor_token``."""
    after = Cursor.decode(cursor_token, filters.sort) if cursor_token else None
    with services().db.read() as conn:
        return execution_queries.search(conn, filters, after=after, limit=limit)


def execution_detail(execution_id: int) -> ExecutionDetail:
    """Return one execution's detail; an unknown id raises ``InvalidInput``."""
    with services().db.read() as conn:
        detail = execution_queries.execution_detail(conn, execution_id)
    if detail is None:
        raise InvalidInput(f"No execution has the id {execution_id}; check the id.")
    return detail


def executions_around(detail: ExecutionDetail) -> pd.DataFrame:
    """Return the user's executions just before and after this one."""
    with services().db.read() as conn:
        return execution_queries.executions_around(conn, detail.execution)


def count_matching(filters: ExecutionFilters) -> int:
    """Count what an export of the search would write (up to the export limit, plus one)."""
    with services().db.read() as conn:
        return execution_queries.count_matching(conn, filters)


def export_csv(filters: ExecutionFilters, on_progress: Callable[[int], None]) -> Path:
    """Write the search's executions to a CSV file chunk by chunk, reporting rows written; return its path."""
    EXPORT_DIR.mkdir(parents=True, exist_ok=True)
    previous = st.session_state.get("executions.export_path")
    if previous:
        Path(previous).unlink(missing_ok=True)
    written = 0
    with tempfile.NamedTemporaryFile(prefix="executions-", suffix=".csv", dir=EXPORT_DIR, delete=False) as handle:
        path = Path(handle.name)
        try:
            with services().db.read(timeout_ms=600_000) as conn:
                for chunk in execution_queries.export_csv(conn, filters):
                    handle.write(chunk.data)
                    written += chunk.rows
                    on_progress(written)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
    st.session_state["executions.export_path"] = str(path)
    return path


def export_file_name(filters: ExecutionFilters) -> str:
    """Name the export after its window and user."""
    who = f"user-{filters.user_id}-" if filters.user_id else ""
    return f"executions-{who}{filters.window.start:%Y%m%dT%H%M}-{filters.window.end:%Y%m%dT%H%M}.csv"


def parse_id(text: str) -> int:
    """Read an execution id typed into a box."""
    return execution_queries.parse_id(text, what="execution id")


EXPORT_MAX_ROWS = execution_queries.EXPORT_MAX_ROWS


def go_forward(cursor: Cursor | None) -> None:
    """Show the page after the current one."""
    if cursor is not None:
        st.session_state.setdefault(PAGES_KEY, []).append(cursor.encode())


def go_back() -> None:
    """Show the page before the current one."""
    cursors: list[str] = st.session_state.get(PAGES_KEY, [])
    if cursors:
        cursors.pop()


def describe_page(filters: ExecutionFilters, pages_before: int, rows: int) -> str:
    """Say which page of which search is shown."""
    first = pages_before * execution_queries.PAGE_SIZE + 1
    span = f"{filters.window.start:%Y-%m-%d %H:%M} → {filters.window.end:%Y-%m-%d %H:%M} UTC"
    who = f"user {filters.user_id}" if filters.user_id else "all users"
    order = "descending" if filters.descending else "ascending"
    if rows == 0:
        return f"{who}, {span}, by {filters.sort.value} ({order}): nothing on this page"
    return f"{who}, {span}, by {filters.sort.value} ({order}): executions {first:,}–{first + rows - 1:,}"


def detail_rows(detail: ExecutionDetail) -> pd.DataFrame:
    """Return an execution's facts as a two-column table."""
    e = detail.execution
    prompt = f"#{e.prompt_id}"
    if detail.prompt_title:
        prompt = f"{detail.prompt_title} (#{e.prompt_id}, version {detail.prompt_version})"
    facts = {
        "User": f"{detail.user_email or '?'} (#{e.user_id})",
        "Prompt": prompt,
        "Provider / model": f"{e.provider} / {e.model}",
        "Error category": e.error_category.value if e.error_category else "—",
        "Error code": e.error_code or "—",
        "Error message": e.error_message or "—",
        "Request id": e.request_id,
        "Created": f"{e.created_at.astimezone(UTC):%Y-%m-%d %H:%M:%S.%f} UTC",
        "Finished": f"{e.finished_at.astimezone(UTC):%Y-%m-%d %H:%M:%S.%f} UTC" if e.finished_at else "—",
        "Score": "—" if e.score is None else f"{e.score:.3f}",
    }
    return pd.DataFrame({"": list(facts), "value": list(facts.values())}).set_index("")


REVEALED_KEY = "executions.revealed"


def revealed_payload(execution_id: int) -> Payload | None:
    """Return the payload this session revealed for an execution, if it did."""
    revealed = st.session_state.get(REVEALED_KEY)
    if isinstance(revealed, Payload) and revealed.execution_id == execution_id:
        return revealed
    return None


def reveal(execution_id: int, reason: str) -> Payload:
    """Reveal an execution's payload for this session (audited); it is forgotten when another is opened."""
    payload = reveal_payload(execution_id, reason)
    st.session_state[REVEALED_KEY] = payload
    return payload


def export_path() -> Path | None:
    """Return the file of this session's last export, if it still exists."""
    previous = st.session_state.get("executions.export_path")
    if previous and Path(previous).exists():
        return Path(previous)
    return None


def export_reader(path: Path) -> Callable[[], BinaryIO]:
    """Return what the download button calls on click: the file, opened (read only then)."""
    return lambda: path.open("rb")


# -- executions: actions --------------------------------------------------------------------------


def reveal_payload(execution_id: int, reason: str) -> Payload:
    """Reveal an execution's payload as the signed-in actor, with a reason (audited)."""
    return services().users.reveal_payload(actor(), PayloadReveal.of(execution_id=execution_id, reason=_reason(reason)))


def cancel_execution(execution_id: int, reason: str) -> ExecutionStatus:
    """Cancel a stuck execution as the signed-in actor (audited)."""
    return services().users.cancel_execution(
        actor(), ExecutionCancel.of(execution_id=execution_id, reason=_reason(reason))
    )


def _reason(reason: str) -> str:
    # The audit log refuses an empty or over-long reason itself (and records the attempt).
    return reason[:5000]


# -- users ----------------------------------------------------------------------------------------


def find_users(text: str) -> list[User]:
    """Find users by email, id or name prefix (bad text raises ``InvalidInput``)."""
    lookup = user_queries.parse_lookup(text)
    with services().db.read() as conn:
        return user_queries.find_users(conn, lookup)


def user(user_id: int) -> User:
    """Return a user's profile through the user cache tier; an unknown id raises ``InvalidInput``."""
    found = services().cached_users.profile(user_id)
    if found is None:
        raise InvalidInput(f"No user has the id {user_id}.")
    return found


def flag_evaluations(found: User) -> tuple[pd.DataFrame | None, str | None]:
    """Return what every known flag evaluates to for the user, or why it cannot be told (Unleash away)."""
    context = {"userId": str(found.id), "properties": {"tier": found.tier.value, "email": found.email}}
    try:
        evaluations = services().flags.evaluate_all(context)
    except (FlagError, DependencyUnavailable) as exc:
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


def usage(user_id: int, days: int = 30) -> pd.DataFrame:
    """Return a user's executions, errors and cost per day over the last ``days`` days."""
    window = TimeWindow.last(timedelta(days=days), now=datetime.now(UTC))
    with services().db.read() as conn:
        return user_queries.usage_over_time(conn, user_id, window)


def recent_executions(user_id: int, *, days: int = 30, limit: int = 20) -> pd.DataFrame:
    """Return a user's newest executions."""
    window = TimeWindow.last(timedelta(days=days), now=datetime.now(UTC))
    with services().db.read() as conn:
        return execution_queries.search(conn, ExecutionFilters(window=window, user_id=user_id), limit=limit).rows


def rate_limit_bucket(found: User) -> BucketState | None:
    """Return the user's token bucket as it is now, or None when Redis does not answer."""
    try:
        return services().rate_limits.bucket(actor(), found.id)
    except RedisUnavailable:
        return None


def describe_bucket(bucket: BucketState) -> str:
    """Say how full a bucket is and how fast it refills."""
    state = "never used or expired: full" if bucket.untouched else f"{bucket.tokens:,.1f} of {bucket.burst:,} tokens"
    return f"{state} · refills {bucket.rate_per_second:g}/s on the {bucket.tier.value} tier"


def reset_rate_limit(found: User, reason: str) -> BucketState:
    """Refill a user's token bucket (audited)."""
    try:
        return services().rate_limits.reset(actor(), RateLimitReset(user_id=found.id, reason=_reason(reason)))
    except RedisUnavailable as exc:
        raise InvalidInput(str(exc)) from exc


USER_PARAM = "user"
QUERY_PARAM = "q"


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


FLASH_KEY = "support.flash"


def flash(message: str) -> None:
    """Keep a success message to show after the rerun that follows an action."""
    st.session_state[FLASH_KEY] = message


def show_flash() -> None:
    """Show (once) the message an action left."""
    message = st.session_state.pop(FLASH_KEY, None)
    if message:
        st.success(message, icon=":material/check_circle:")


def change_tier(user_id: int, tier: str, reason: str) -> User:
    """Move a user to another tier (audited)."""
    try:
        wanted = Tier(tier)
    except ValueError:
        raise InvalidInput(f"Unknown tier “{tier[:40]}”; use one of {', '.join(t.value for t in Tier)}.") from None
    return services().users.change_tier(actor(), TierChange.of(user_id=user_id, tier=wanted, reason=_reason(reason)))


def suspend(user_id: int, reason: str) -> User:
    """Suspend a user (audited); their sessions and cached profile are dropped."""
    try:
        return services().users.suspend(actor(), UserStatusChange.of(user_id=user_id, reason=_reason(reason)))
    except SessionStoreUnavailable as exc:
        raise InvalidInput(str(exc)) from exc


def restore(user_id: int, reason: str) -> User:
    """Restore a suspended user (audited)."""
    return services().users.restore(actor(), UserStatusChange.of(user_id=user_id, reason=_reason(reason)))


# -- leaderboards ---------------------------------------------------------------------------------


def leaderboard(subject: Subject, window: Window) -> Leaderboard | None:
    """Return the newest ranking of a board through the cache tier."""
    return services().leaderboards.top(subject, window)


def refresh_leaderboards(reason: str) -> LeaderboardRefreshReport:
    """Recompute every leaderboard now, as the signed-in actor (audited)."""
    return services().leaderboards.refresh(actor(), LeaderboardRecompute(reason=_reason(reason)))


WINDOW_NAMES = {Window.DAY: "Day", Window.WEEK: "Week", Window.ALL: "All time"}
rule_for = leaderboard_rule


def board_from_link() -> tuple[Subject, Window]:
    """Return the board and window the link names (``?board=user|prompt&window=day|week|all``)."""
    subject = st.session_state.get("leaderboards.subject") or Subject.USER
    window = st.session_state.get("leaderboards.window") or Window.WEEK
    if "board" in st.query_params:
        subject = parse_subject(st.query_params["board"][:MAX_BOX])
    if "window" in st.query_params:
        window = parse_window(st.query_params["window"][:MAX_BOX])
    return Subject(subject), Window(window)


def write_board_link(subject: Subject | None, window: Window | None) -> None:
    """Put the board and window shown into the link."""
    st.query_params["board"] = (subject or Subject.USER).value
    st.query_params["window"] = (window or Window.WEEK).value


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


def may_refresh() -> bool:
    """Tell whether the signed-in actor may recompute the leaderboards."""
    return can(actor(), Permission.RECOMPUTE_LEADERBOARDS)
