"""Audit log: who changed what, when, why and with which outcome; filter by actor, action, target, time."""

import streamlit as st

from dashboard import audit_log, auth, widgets

st.title("Audit log")
actor = auth.current_actor()
window = widgets.time_window()
filters = audit_log.audit_filters()
records = audit_log.audit_records(actor, filters, window)

if not records:
    st.info("No audit records match these filters in this range.", icon=":material/info:")
    if audit_log.paged():
        st.button("Newest records", on_click=audit_log.newest, key="audit.newest")
else:
    st.caption(audit_log.records_caption(records))
    picked = st.dataframe(
        audit_log.audit_frame(records),
        hide_index=True,
        width="stretch",
        on_select="rerun",
        selection_mode="single-row",
        key="audit-table",
    )
    if picked.selection.rows:
        audit_log.show_change(records[picked.selection.rows[0]])
    newer, older = st.columns(2)
    if audit_log.paged():
        newer.button("Newest records", on_click=audit_log.newest, key="audit.newest")
    if audit_log.has_older(records):
        older.button("Older records", on_click=audit_log.older, args=(records,), key="audit.older")
