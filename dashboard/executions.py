"""The Executions page: the search in the link, keyset pages, one execution, its audited payload, the export.

Filters live in the link's query string so a view can be pasted into a ticket. The names are the
ones the Errors page links with: ``user`` (id or email), ``status``, ``category``, ``provider``,
``model``, ``from`` and ``to`` (ISO 8601 UTC, read by ``widgets.time_window``), plus ``sort``
(time, latency, cost), ``order`` (desc, asc) and ``execution`` (the id of the one opened).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import BinaryIO

import pandas as pd
import streamlit as st
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

from core.domain.exceptions import InvalidInput
from core.domain.models import Actor, ErrorCategory, ExecutionStatus, TimeWindow
from core.domain.rbac import Permission, can
from core.users import ExecutionCancel, Payload, PayloadReveal
from dashboard import time_range, widgets
from dashboard.services import services
from queries import executions as execution_queries
from queries import users as user_queries
from queries.executions import Cursor, ExecutionDetail, ExecutionFilters, ExecutionPage, SortKey
from queries.users import UserLookup

FILTER_PARAMS = ("user", "status", "category", "provider", "model", "sort", "order")
EXECUTION_PARAM = "execution"
MAX_BOX = execution_queries.MAX_TEXT
EXPORT_DIR = Path(tempfile.gettempdir()) / "krowoc-exports"
EXPORT_KEEP_SECONDS = 15 * 60
"""An export not downloaded this long after it was written is deleted by the next sweep."""
EXECUTIONS_PAGE = Path(__file__).resolve().parent.parent / "pages" / "executions.py"
STATUSES = ["", *(s.value for s in ExecutionStatus)]
CATEGORIES = ["", *(c.value for c in ErrorCategory)]
SORTS = [k.value for k in SortKey]
ORDERS = {"desc": "highest / newest first", "asc": "lowest / oldest first"}
STUCK = (ExecutionStatus.QUEUED, ExecutionStatus.RUNNING)
"""The statuses of an execution that may be cancelled."""

PAGES_KEY = "executions.pages"
SIGNATURE_KEY = "executions.signature"
REVEALED_KEY = "executions.revealed"
EXPORT_KEY = "executions.export_path"


# -- the search in the link -----------------------------------------------------------------------


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
    """Put the search filters into the link (empty values, and the default sort and order, are removed)."""
    defaults = {"sort": SortKey.TIME.value, "order": "desc"}
    for name in FILTER_PARAMS:
        value = (values.get(name) or "").strip()
        if value and value != defaults.get(name):
            st.query_params[name] = value
        elif name in st.query_params:
            del st.query_params[name]
    if EXECUTION_PARAM in st.query_params:
        del st.query_params[EXECUTION_PARAM]


def filters_from_link(window: TimeWindow) -> ExecutionFilters:
    """Check the link's search, look up its user and return the search; bad values raise ``InvalidInput``."""
    parsed = parse_execution_params(link_params())
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


def index_of(options: list[str], value: str | None) -> int:
    """Return where a link's value sits among a picker's options (the first option when it is not there)."""
    return options.index(value) if value in options else 0


# -- one execution --------------------------------------------------------------------------------


def parse_id(text: str) -> int:
    """Read an execution id typed into a box."""
    return execution_queries.parse_id(text, what="execution id")


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


def error_text(detail: ExecutionDetail) -> str:
    """Write a failed execution's error code and message on one line (text from the provider: show it as text)."""
    e = detail.execution
    return f"{e.error_code or '—'}: {e.error_message or ''}"


def is_stuck(detail: ExecutionDetail) -> bool:
    """Tell whether the execution is still queued or running, so it may be cancelled."""
    return detail.execution.status in STUCK


def revealed_payload(execution_id: int) -> Payload | None:
    """Return the payload this session revealed for an execution, if it did."""
    revealed = st.session_state.get(REVEALED_KEY)
    if isinstance(revealed, Payload) and revealed.execution_id == execution_id:
        return revealed
    return None


def reveal(actor: Actor, execution_id: int, reason: str) -> Payload:
    """Reveal an execution's payload for this session (audited); it is forgotten when another is opened."""
    request = PayloadReveal.of(execution_id=execution_id, reason=widgets.audit_reason(reason))
    payload = services().users.reveal_payload(actor, request)
    st.session_state[REVEALED_KEY] = payload
    return payload


def cancel_execution(actor: Actor, execution_id: int, reason: str) -> ExecutionStatus:
    """Cancel a stuck execution as the actor (audited)."""
    request = ExecutionCancel.of(execution_id=execution_id, reason=widgets.audit_reason(reason))
    return services().users.cancel_execution(actor, request)


# -- the search's pages ---------------------------------------------------------------------------


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


# -- the export -----------------------------------------------------------------------------------
#
# An export is written to a file of this session's own under EXPORT_DIR, then handed to the
# browser: the file is deleted as the download starts (the open handle still reads it), when the
# session prepares another, and, for a session that ended without downloading, by the sweep each
# export runs first (a file whose session is gone, or older than EXPORT_KEEP_SECONDS).


def may_export(actor: Actor) -> bool:
    """Tell whether the actor may export executions (support and admins)."""
    return can(actor, Permission.EXPORT_EXECUTIONS)


def export_limit() -> int:
    """Return the most executions one export writes (``KROWOC_EXPORT_MAX_ROWS``)."""
    return services().exports.max_rows


def _session_id() -> str:
    context = get_script_run_ctx()
    return context.session_id if context is not None else "bare"


def _session_alive(session_id: str) -> bool:
    if not Runtime.exists():
        return True  # run bare (a test): only age ends a file
    return Runtime.instance().is_active_session(session_id)


def sweep_exports(now: float | None = None) -> int:
    """Delete the export files of sessions that ended and any older than ``EXPORT_KEEP_SECONDS``; return how many."""
    moment = time.time() if now is None else now
    removed = 0
    for path in EXPORT_DIR.glob("executions-*.csv"):
        session_id = path.name.removeprefix("executions-").split("--", 1)[0]
        try:
            stale = moment - path.stat().st_mtime > EXPORT_KEEP_SECONDS or not _session_alive(session_id)
            if stale:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


def export_csv(actor: Actor, filters: ExecutionFilters, on_progress: Callable[[int, int], None]) -> Path:
    """Write the search's executions to a file of this session's own (rules and audit in core); return its path."""
    EXPORT_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    sweep_exports()
    previous = st.session_state.pop(EXPORT_KEY, None)
    if previous:
        Path(previous).unlink(missing_ok=True)
    with tempfile.NamedTemporaryFile(
        prefix=f"executions-{_session_id()}--", suffix=".csv", dir=EXPORT_DIR, delete=False
    ) as handle:
        path = Path(handle.name)
        try:
            execution_queries.export_search(services().exports, actor, filters, handle, on_progress)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
    st.session_state[EXPORT_KEY] = str(path)
    return path


def export_path() -> Path | None:
    """Return the file of this session's last export, if it still exists."""
    previous = st.session_state.get(EXPORT_KEY)
    if previous and Path(previous).exists():
        return Path(previous)
    return None


def export_reader(path: Path) -> Callable[[], BinaryIO]:
    """Return what the download button calls on click: the file, opened, and deleted from the disk."""

    def read() -> BinaryIO:
        handle = path.open("rb")
        path.unlink(missing_ok=True)  # the open handle still reads it; nothing stays on the server
        return handle

    return read


def export_file_name(filters: ExecutionFilters) -> str:
    """Name the export after its window and user."""
    who = f"user-{filters.user_id}-" if filters.user_id else ""
    return f"executions-{who}{filters.window.start:%Y%m%dT%H%M}-{filters.window.end:%Y%m%dT%H%M}.csv"
