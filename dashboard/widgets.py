"""Widgets the pages share: the time-range and provider/model pickers, action notices, and the error boundary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import streamlit as st

from core.config import get_settings
from core.domain.catalog import KNOWN_MODELS, PROVIDERS
from core.domain.exceptions import DatabaseUnavailable, DependencyUnavailable, InvalidInput, UnsafeConfiguration
from core.domain.models import TimeWindow
from core.domain.rbac import PermissionDenied
from core.flags.models import FlagError
from dashboard import time_range
from dashboard.time_range import CUSTOM, LABELS, LINK_PARAMS, RangeChoice
from dashboard.untrusted import md
from queries.errors import check_retention

RANGE_KEY = "time_window.range"
FROM_KEY = "time_window.from"
TO_KEY = "time_window.to"
APPLIED_KEY = "time_window.applied"
WINDOW_KEY = "time_window"
"""Session-state key of the window the current page shows (a ``TimeWindow``)."""


def time_window(*, within_retention: bool = False) -> TimeWindow:
    """Draw the time-range picker, keep its value in the link, and return the chosen window.

    The link wins when it names a range this session has not applied yet (a shared link);
    a link with a range that cannot be used shows a warning and the default range. A custom
    range that ends before it starts shows an error and stops the page, so no query runs.
    With ``within_retention``, a range reaching before the oldest kept execution (or wholly in
    the future) raises ``InvalidInput``, which the app shows as a message.
    """
    link = time_range.from_query_params(_link_params())
    if link.problem:
        st.warning(md(link.problem), icon=":material/link_off:")
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
        st.error(md(exc), icon=":material/event_busy:")
        st.stop()
    st.caption(time_range.describe(window))
    st.session_state[WINDOW_KEY] = window
    if within_retention:
        check_retention(window, retention=timedelta(days=get_settings().execution_retention_days))
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


# -- the provider and model filter ---------------------------------------------------------------

ALL = "All"


def provider_model_filter(key: str) -> tuple[str | None, str | None]:
    """Draw the provider and model pickers (kept in the link as ``provider`` and ``model``)."""
    linked_provider = _link_choice("provider", list(PROVIDERS), "provider")
    models = (
        list(KNOWN_MODELS.get(linked_provider, ()))
        if linked_provider
        else [m for ms in KNOWN_MODELS.values() for m in ms]
    )
    linked_model = _link_choice("model", models, "model")
    left, right = st.columns(2)
    provider_options = [ALL, *PROVIDERS]
    provider = left.selectbox(
        "Provider", provider_options, index=provider_options.index(linked_provider or ALL), key=f"{key}.provider"
    )
    chosen_provider = None if provider == ALL else provider
    model_options = [ALL, *(KNOWN_MODELS[chosen_provider] if chosen_provider else models)]
    model_index = model_options.index(linked_model) if linked_model in model_options else 0
    model = right.selectbox("Model", model_options, index=model_index, key=f"{key}.model")
    chosen_model = None if model == ALL else model
    for param, value in (("provider", chosen_provider), ("model", chosen_model)):
        if value is None:
            if param in st.query_params:
                del st.query_params[param]
        elif st.query_params.get(param) != value:
            st.query_params[param] = value
    return chosen_provider, chosen_model


def _link_choice(param: str, options: list[str], what: str) -> str | None:
    value = st.query_params.get(param)
    if value is None or value in options:
        return value
    st.warning(f"The link's {what} {md(value)} is not one of {', '.join(options)}; showing all {what}s instead.")
    del st.query_params[param]
    return None


# -- admin actions ---------------------------------------------------------------------------------

FLASH_KEY = "actions.flash"
MAX_REASON = 5000


def audit_reason(text: str) -> str:
    """Return a typed reason as an action request takes it (the audit log itself refuses one too long)."""
    # Cut to what the request model holds, so an over-long reason reaches the audit log, which
    # records the attempt and says how long a reason may be, instead of failing validation first.
    return text[:MAX_REASON]


def flash(message: str) -> None:
    """Keep a success message to show after the rerun that follows an action."""
    st.session_state[FLASH_KEY] = message


def show_flash() -> None:
    """Show (once) the message an action left."""
    message = st.session_state.pop(FLASH_KEY, None)
    if message:
        st.success(message, icon=":material/check_circle:")


# -- the error boundary ----------------------------------------------------------------------------

KNOWN_ERRORS = (DependencyUnavailable, InvalidInput, PermissionDenied, FlagError, UnsafeConfiguration)
"""What a person can understand or act on: a part that is down, bad input, a refused permission."""


@contextmanager
def known_errors_shown() -> Iterator[None]:
    """Show a known error raised in the block as a message instead of a traceback.

    The app runs every page inside it: a page stops at such an error and shows one message. An
    admin action's form runs its action inside it too, so a refused or failed action is shown
    beside its form and the rest of the page is still drawn.
    """
    try:
        yield
    except KNOWN_ERRORS as exc:
        show_error(exc)


def show_error(exc: Exception) -> None:
    """Show a known error as a message: for a dependency that is away, which part it is."""
    if isinstance(exc, DatabaseUnavailable):
        hint = " The embedded default is not running: start it with `krowoc-admin stack up`."
        st.error(f"{md(exc)}{hint if get_settings().embedded else ''}", icon=":material/database_off:")
    elif isinstance(exc, DependencyUnavailable):
        st.error(md(part_down(exc)), icon=":material/cloud_off:")
    elif isinstance(exc, PermissionDenied):
        st.error(md(exc), icon=":material/lock:")
    else:
        st.error(md(exc), icon=":material/error:")


def part_down(exc: DependencyUnavailable) -> str:
    """Say which part is down: the dependency's own message when it names the part, else prefixed with it."""
    message = str(exc)
    # A session store message may name Redis, which holds it: any name of the part will do.
    names = [kind.component for kind in type(exc).__mro__ if issubclass(kind, DependencyUnavailable)]
    if any(name.lower() in message.lower() for name in names):
        return message
    part = exc.component[:1].upper() + exc.component[1:]
    return f"{part} did not answer: {message}" if message else f"{part} did not answer."
