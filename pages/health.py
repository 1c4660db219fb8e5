"""Health: every dependency's status in one shape (pass, warn, fail), re-checked every 15 s."""

import streamlit as st

from dashboard import admin

st.title("Health")
st.caption("PostgreSQL is required; the other parts degrade the pages that use them and nothing else.")


@st.fragment(run_every="15s")
def dependencies() -> None:
    status, results = admin.health()
    st.metric("Overall", status.value, border=True)
    st.badge(status.value, icon=admin.STATUS_ICONS[status], color=admin.STATUS_COLORS[status])
    st.dataframe(admin.status_style(admin.health_frame(results)), hide_index=True, width="stretch")


dependencies()
