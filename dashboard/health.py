"""The Health page: every dependency's check, run now, as one table in one shape."""

from __future__ import annotations

import pandas as pd
from pandas.io.formats.style import Styler

from core.domain.models import Actor
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


def checks(actor: Actor) -> tuple[HealthStatus, list[HealthCheck]]:
    """Return the overall status and every dependency's check, run now (details for operators and admins)."""
    return services().health.report(actor)


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


def status_table(results: list[HealthCheck]) -> Styler:
    """Return the checks' table with the Status column coloured and latencies to 0.1 ms (for ``st.dataframe``)."""
    styled = health_frame(results).style.map(lambda status: _STATUS_CELL.get(status, ""), subset=["Status"])
    return styled.format("{:.1f}", subset=["Latency (ms)"], na_rep="—")
