"""Helpers of the Health and Audit log pages: cached health checks and the audit search form."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

import pandas as pd
import streamlit as st
from pandas.io.formats.style import Styler

from core.audit import AuditLog
from core.domain.exceptions import InvalidInput
from core.domain.models import Actor, AuditOutcome, AuditRecord, TimeWindow
from core.health import HealthCheck, HealthStatus
from dashboard.services import services

# Colours and Material icons ship with Streamlit: unlike emoji, they render without an emoji font.
STATUS_COLORS = {HealthStatus.PASS: "green", HealthStatus.WARN: "orange", HealthStatus.FAIL: "red"}
STATUS_ICONS = {
    HealthStatus.PASS: ":material/check_circle:",
    HealthStatus.WARN: ":material/warning:",
    HealthStatus.FAIL: ":material/error:",
}
_STATUS_CELL = {
    HealthStatus.PASS.value: "color: #15803d; font-weight: 600",
    HealthStatus.WARN.value: "color: #b45309; font-weight: 600",
    HealthStatus.FAIL.value: "color: #b91c1c; font-weight: 600",
}
MAX_FILTER_LENGTH = 200
AUDIT_ROWS = 500


def health() -> tuple[HealthStatus, list[HealthCheck]]:
    """Return the overall status and every dependency's check, run now."""
    return services().health.overall()


def status_style(frame: pd.DataFrame) -> Styler:
    """Colour the Status column of ``health_frame`` and show latencies to 0.1 ms (a Styler for ``st.dataframe``)."""
    styled = frame.style.map(lambda status: _STATUS_CELL.get(status, ""), subset=["Status"])
    return styled.format("{:.1f}", subset=["Latency (ms)"], na_rep="—")


def health_frame(results: list[HealthCheck]) -> pd.DataFrame:
    """Return the checks as a table: one row per dependency."""
    return pd.DataFrame(
        {
            "Component": [r.component for r in results],
            "Status": [r.status.value for r in results],
            "Latency (ms)": pd.Series(
                [float("nan") if r.latency_ms is None else round(r.latency_ms, 1) for r in results], dtype="float64"
            ),
            "Detail": [r.detail for r in results],
            "Required": ["yes" if r.required else "no" for r in results],
            "Checked (UTC)": [r.observed_at.strftime("%H:%M:%S") for r in results],
        }
    )


@dataclass(frozen=True)
class AuditFilters:
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
    action = action_col.text_input("Action", value=params.get("action", ""), placeholder="e.g. change_user_tier")
    outcomes = ["any", *[o.value for o in AuditOutcome]]
    wanted = params.get("outcome", "any")
    outcome = outcome_col.selectbox("Outcome", outcomes, index=outcomes.index(wanted) if wanted in outcomes else 0)
    target_type = target_type_col.text_input("Target type", value=params.get("target_type", ""), placeholder="user")
    target_id = target_id_col.text_input("Target id", value=params.get("target_id", ""))
    filters = AuditFilters(
        actor=_clean("Actor", actor),
        action=_clean("Action", action),
        target_type=_clean("Target type", target_type),
        target_id=_clean("Target id", target_id),
        outcome=None if outcome == "any" else outcome,
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


def audit_records(actor: Actor, filters: AuditFilters, window: TimeWindow) -> list[AuditRecord]:
    """Return the newest audit records matching the filters in the window, if the actor may read them."""
    log: AuditLog = services().audit
    records = log.browse(
        actor,
        actor=filters.actor,
        action=filters.action,
        target_type=filters.target_type,
        target_id=filters.target_id,
        since=window.start,
        until=window.end + timedelta(seconds=1),
        limit=AUDIT_ROWS,
    )
    return [r for r in records if filters.outcome is None or r.outcome.value == filters.outcome]


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
    """Show one audit record's state before and after, and why it was made."""
    st.subheader(f"{record.action} on {record.target_type}:{record.target_id}")
    st.caption(f"{record.at:%Y-%m-%d %H:%M:%S} UTC by {record.actor} ({record.actor_role.value}) — {record.outcome}")
    if record.reason:
        st.write(f"Reason: {record.reason}")
    if record.detail:
        st.write(f"Detail: {record.detail}")
    before, after = st.columns(2)
    before.markdown("**Before**")
    before.code(json.dumps(record.before, indent=2, sort_keys=True) if record.before else "—", language="json")
    after.markdown("**After**")
    after.code(json.dumps(record.after, indent=2, sort_keys=True) if record.after else "—", language="json")
