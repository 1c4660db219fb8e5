"""Audit log: who changed what, when, why and with which outcome; filter by actor, action, target, time."""

import streamlit as st

from dashboard import admin, auth, widgets

st.title("Audit log")
actor = auth.current_actor()
window = widgets.time_window()
filters = admin.audit_filters()
records = admin.audit_records(actor, filters, window)

if not records:
    st.info("No audit records match these filters in this range.", icon=":material/info:")
else:
    st.caption(
        f"{len(records):,} record(s), newest first (at most {admin.AUDIT_ROWS}). Select a row to see the change."
    )
    picked = st.dataframe(
        admin.audit_frame(records),
        hide_index=True,
        width="stretch",
        on_select="rerun",
        selection_mode="single-row",
        key="audit-table",
    )
    rows = picked.selection.rows
    if rows:
        admin.show_change(records[rows[0]])
