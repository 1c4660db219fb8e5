"""Widgets every page shares: the time-range picker and the boundary that turns known errors into messages."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import streamlit as st
from sqlalchemy.exc import OperationalError

from core.config import get_settings
from core.domain.exceptions import DatabaseUnavailable, InvalidInput
from core.domain.models import TimeWindow
from core.domain.rbac import PermissionDenied
from dashboard import time_range
from dashboard.time_range import CUSTOM, LABELS, LINK_PARAMS, RangeChoice

log = logging.getLogger(__name__)

RANGE_KEY = "time_window.range"
FROM_KEY = "time_window.from"
TO_KEY = "time_window.to"
APPLIED_KEY = "time_window.applied"
WINDOW_KEY = "time_window"
"""Session-state key of the window the current page shows (a ``TimeWindow``)."""


def time_window() -> TimeWindow:
    """Draw the time-range picker, keep its value in the link, and return the chosen window.

    The link wins when it names a range this session has not applied yet (a shared link);
    a link with a range that cannot be used shows a warning and the default range. A custom
    range that ends before it starts shows an error and stops the page, so no query runs.
    """
    link = time_range.from_query_params(_link_params())
    if link.problem:
        st.warning(link.problem, icon=":material/link_off:")
        _apply(RangeChoice.default())
    elif link.choice is not None and link.choice != st.session_state.get(APPLIED_KEY):
        _apply(link.choice)
    elif RANGE_KEY not in st.session_state:
        # A new session, or back from a page without the picker (Streamlit forgets the state of
        # widgets a run does not draw): reopen the range last shown.
        _apply(st.session_state.get(APPLIED_KEY) or RangeChoice.default())

    choice = _picker()
    _write_link(choice)
    try:
        window = choice.window(now=datetime.now(UTC).replace(microsecond=0))
    except InvalidInput as exc:
        st.session_state.pop(WINDOW_KEY, None)
        st.error(str(exc), icon=":material/event_busy:")
        st.stop()
    st.caption(time_range.describe(window))
    st.session_state[WINDOW_KEY] = window
    return window


def _link_params() -> dict[str, str]:
    return {name: st.query_params[name] for name in LINK_PARAMS if name in st.query_params}


def _apply(choice: RangeChoice) -> None:
    """Put a choice into the picker's widgets (before they are drawn in this run)."""
    st.session_state[RANGE_KEY] = choice.preset
    if choice.start is not None and choice.end is not None:
        st.session_state[FROM_KEY] = _naive_utc(choice.start)
        st.session_state[TO_KEY] = _naive_utc(choice.end)
    st.session_state[APPLIED_KEY] = choice


def _naive_utc(moment: datetime) -> datetime:
    # The date-time inputs hold naive values; they are labelled and read as UTC.
    return moment.astimezone(UTC).replace(tzinfo=None)


def _picker() -> RangeChoice:
    preset = st.segmented_control(
        "Time range",
        list(LABELS),
        key=RANGE_KEY,
        format_func=LABELS.__getitem__,
        required=True,
    )
    if preset != CUSTOM:
        return RangeChoice(preset or time_range.DEFAULT_PRESET)
    if FROM_KEY not in st.session_state or TO_KEY not in st.session_state:
        # Open a custom range on the window shown until now.
        shown = st.session_state.get(WINDOW_KEY) or RangeChoice.default().window(now=datetime.now(UTC))
        st.session_state[FROM_KEY] = _naive_utc(shown.start)
        st.session_state[TO_KEY] = _naive_utc(shown.end)
    start_column, end_column = st.columns(2)
    with start_column:
        start = st.datetime_input("From (UTC)", key=FROM_KEY, format="YYYY-MM-DD", step=60)
    with end_column:
        end = st.datetime_input("To (UTC)", key=TO_KEY, format="YYYY-MM-DD", step=60)
    if start is None or end is None:
        return RangeChoice(CUSTOM)
    return RangeChoice.custom(start, end)


def _write_link(choice: RangeChoice) -> None:
    wanted = choice.query_params()
    if _link_params() != wanted:
        for name in LINK_PARAMS:
            if name not in wanted and name in st.query_params:
                del st.query_params[name]
        st.query_params.update(wanted)
    st.session_state[APPLIED_KEY] = choice


@contextmanager
def known_errors_shown() -> Iterator[None]:
    """Show the errors a person can understand or act on as messages instead of tracebacks."""
    try:
        yield
    except DatabaseUnavailable as exc:
        hint = " The embedded default is not running: start it with `krowoc-admin stack up`."
        st.error(f"{exc}{hint if get_settings().embedded else ''}", icon=":material/database_off:")
    except OperationalError as exc:
        log.warning("dashboard query failed: %s", exc.orig.__class__.__name__ if exc.orig else exc)
        st.error(
            "PostgreSQL did not answer this page's query (it timed out or the connection dropped). "
            "Try again, or pick a shorter time range.",
            icon=":material/database_off:",
        )
    except PermissionDenied as exc:
        st.error(str(exc), icon=":material/lock:")
    except InvalidInput as exc:
        st.error(str(exc), icon=":material/error:")
