"""The Audit log page: its filters in the link, the matching records, and one record's change."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pandas as pd
import streamlit as st

from core.domain.exceptions import InvalidInput
from core.domain.models import Actor, AuditOutcome, AuditRecord, TimeWindow
from dashboard.services import services
from dashboard.untrusted import md

MAX_FILTER_LENGTH = 200
AUDIT_ROWS = 500
ANY_OUTCOME = "any"
OUTCOMES = [ANY_OUTCOME, *(o.value for o in AuditOutcome)]


@dataclass(frozen=True)
class AuditFilters:
    """What the person narrowed the audit log to (None: any)."""

    actor: str | None
    action: str | None
    target_type: str | None
    target_id: str | None
    outcome: str | None


def _clean(label: str, value: str) -> str | None:
    cleaned = value.strip()
    if len(cleaned) > MAX_FILTER_LENGTH:
        raise InvalidInput(f"{label} may be at most {MAX_FILTER_LENGTH} characters.")
    return cleaned or None


def audit_filters() -> AuditFilters:
    """Draw the audit log's filters, kept in the link, and return the validated values."""
    params = st.query_params
    actor_col, action_col, outcome_col = st.columns(3)
    target_type_col, target_id_col = st.columns(2)
    actor = actor_col.text_input("Actor", value=params.get("actor", ""), placeholder="e.g. dev:ada")
    action = action_col.text_input("Action", value=params.get("action", ""), placeholder="e.g. user.change_tier")
    wanted = params.get("outcome", ANY_OUTCOME)
    outcome = outcome_col.selectbox("Outcome", OUTCOMES, index=OUTCOMES.index(wanted) if wanted in OUTCOMES else 0)
    target_type = target_type_col.text_input("Target type", value=params.get("target_type", ""), placeholder="user")
    target_id = target_id_col.text_input("Target id", value=params.get("target_id", ""))
    filters = AuditFilters(
        actor=_clean("Actor", actor),
        action=_clean("Action", action),
        target_type=_clean("Target type", target_type),
        target_id=_clean("Target id", target_id),
        outcome=None if outcome == ANY_OUTCOME else outcome,
    )
    for name, value in (
        ("actor", filters.actor),
        ("action", filters.action),
        ("outcome", filters.outcome),
        ("target_type", filters.target_type),
        ("target_id", filters.target_id),
    ):
        if value and params.get(name) != value:
            st.query_params[name] = value
        elif not value and name in params:
            del st.query_params[name]
    return filters


PAGE_KEY = "audit.before"
"""Session-state key of the keyset cursor: the id the page shows records below (None: the newest)."""


def audit_records(actor: Actor, filters: AuditFilters, window: TimeWindow) -> list[AuditRecord]:
    """Return one page of the audit records matching the filters in the window, if the actor may read them.

    Every filter, the outcome too, is applied by the database before the page is cut, and the
    page is a keyset page: below the id kept in the session (``older``), newest first.
    """
    shown = (filters, window.start, window.end)
    if st.session_state.get(f"{PAGE_KEY}.for") != shown:
        st.session_state[f"{PAGE_KEY}.for"] = shown
        st.session_state[PAGE_KEY] = None
    return services().audit.search(
        actor,
        actor=filters.actor,
        action=filters.action,
        target_type=filters.target_type,
        target_id=filters.target_id,
        outcome=filters.outcome,
        since=window.start,
        until=window.end + timedelta(seconds=1),
        before_id=st.session_state.get(PAGE_KEY),
        limit=AUDIT_ROWS,
    )


def older(records: list[AuditRecord]) -> None:
    """Move the page to the records older than the ones shown."""
    st.session_state[PAGE_KEY] = records[-1].id


def newest() -> None:
    """Move the page back to the newest records."""
    st.session_state[PAGE_KEY] = None


def has_older(records: list[AuditRecord]) -> bool:
    """Tell whether the page is full, so older records may exist."""
    return len(records) == AUDIT_ROWS


def paged() -> bool:
    """Tell whether the page shows older records, not the newest."""
    return st.session_state.get(PAGE_KEY) is not None


def records_caption(records: list[AuditRecord]) -> str:
    """Say how many records are shown, in which order, and how to see one."""
    where = "older records" if paged() else "the newest records"
    return f"{len(records):,} of {where}, newest first ({AUDIT_ROWS} a page). Select a row to see the change."


def audit_frame(records: list[AuditRecord]) -> pd.DataFrame:
    """Return audit records as a table, newest first."""
    return pd.DataFrame(
        {
            "At (UTC)": [r.at.strftime("%Y-%m-%d %H:%M:%S") for r in records],
            "Actor": [r.actor for r in records],
            "Role": [r.actor_role.value for r in records],
            "Action": [r.action for r in records],
            "Target": [f"{r.target_type}:{r.target_id}" for r in records],
            "Outcome": [r.outcome.value for r in records],
            "Reason": [r.reason or "" for r in records],
            "Source": [r.source.value for r in records],
            "Request id": [r.request_id for r in records],
        }
    )


def show_change(record: AuditRecord) -> None:
    """Show one audit record's state before and after, and why it was made (the reason and detail as text)."""
    st.subheader(f"{md(record.action)} on {md(record.target_type)}:{md(record.target_id)}")
    st.caption(
        f"{record.at:%Y-%m-%d %H:%M:%S} UTC by {md(record.actor)} ({record.actor_role.value}) — {record.outcome}"
    )
    if record.reason:
        st.text(f"Reason: {record.reason}")
    if record.detail:
        st.text(f"Detail: {record.detail}")
    before, after = st.columns(2)
    before.markdown("**Before**")
    before.code(_json(record.before), language="json")
    after.markdown("**After**")
    after.code(_json(record.after), language="json")


def _json(state: dict[str, Any] | None) -> str:
    return json.dumps(state, indent=2, sort_keys=True) if state else "—"
