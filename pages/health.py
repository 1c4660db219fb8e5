"""Health: every dependency's status in one shape (pass, warn, fail), re-checked every 15 s."""

import streamlit as st

from dashboard import auth, health

st.title("Health")
actor = auth.current_actor()
st.caption("PostgreSQL is required; the other parts degrade the pages that use them and nothing else.")


@st.fragment(run_every="15s")
def dependencies() -> None:
    status, results = health.checks(actor)
    st.metric("Overall", status.value, border=True)
    st.badge(status.value, icon=health.STATUS_ICONS[status], color=health.STATUS_COLORS[status])
    st.dataframe(health.status_table(results), hide_index=True, width="stretch")


dependencies()
