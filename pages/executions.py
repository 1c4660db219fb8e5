"""Executions: find one user's executions among all of them, open one, reveal its payload, export a search."""

import streamlit as st

from dashboard import auth, executions, formats, widgets

st.title("Executions")
actor = auth.current_actor()
window = widgets.time_window()
link = executions.link_params()

with st.form("executions.filters"):
    user_column, status_column, category_column = st.columns([2, 1, 1])
    user = user_column.text_input(
        "User (email or id)", value=link.get("user", ""), key="executions.user", max_chars=executions.MAX_BOX
    )
    status = status_column.selectbox(
        "Status",
        executions.STATUSES,
        index=executions.index_of(executions.STATUSES, link.get("status")),
        key="executions.status",
        format_func=lambda v: v or "any",
    )
    category = category_column.selectbox(
        "Error category",
        executions.CATEGORIES,
        index=executions.index_of(executions.CATEGORIES, link.get("category")),
        key="executions.category",
        format_func=lambda v: v or "any",
    )
    provider_column, model_column, sort_column, order_column = st.columns(4)
    provider = provider_column.text_input(
        "Provider", value=link.get("provider", ""), key="executions.provider", max_chars=executions.MAX_BOX
    )
    model = model_column.text_input(
        "Model", value=link.get("model", ""), key="executions.model", max_chars=executions.MAX_BOX
    )
    sort = sort_column.selectbox(
        "Sort by",
        executions.SORTS,
        index=executions.index_of(executions.SORTS, link.get("sort")),
        key="executions.sort",
    )
    order = order_column.selectbox(
        "Order",
        list(executions.ORDERS),
        index=executions.index_of(list(executions.ORDERS), link.get("order")),
        key="executions.order",
        format_func=executions.ORDERS.__getitem__,
    )
    if st.form_submit_button("Search", type="primary"):
        executions.write_link(
            {"user": user, "status": status, "category": category, "provider": provider, "model": model,
             "sort": sort, "order": order}
        )  # fmt: skip
        st.rerun()

filters = executions.filters_from_link(window)

# -- one execution ---------------------------------------------------------------------------------
with st.form("executions.open"):
    id_column, button_column = st.columns([3, 1], vertical_alignment="bottom")
    typed_id = id_column.text_input("Open execution by id", key="executions.open_id", max_chars=executions.MAX_BOX)
    if button_column.form_submit_button("Open execution"):
        executions.open_execution(executions.parse_id(typed_id))
        st.rerun()

opened = executions.opened_execution()
if opened is not None:
    detail = executions.execution_detail(opened)
    execution = detail.execution
    st.subheader(f"Execution {execution.id}")
    st.button("Close", key="executions.close", on_click=executions.close_execution)
    status_metric, latency_metric, ttfb_metric, tokens_metric, cost_metric = st.columns(5)
    status_metric.metric("Status", execution.status.value, border=True)
    latency_metric.metric("Latency", formats.duration_ms(execution.latency_ms), border=True)
    ttfb_metric.metric("TTFB", formats.duration_ms(execution.ttfb_ms), border=True)
    tokens_metric.metric("Tokens in / out", f"{execution.input_tokens:,} / {execution.output_tokens:,}", border=True)
    cost_metric.metric("Cost", formats.usd(execution.cost_usd), border=True)
    st.dataframe(executions.detail_rows(detail), key="executions.detail")
    if execution.error_category is not None:
        st.error(f"Failed: {execution.error_category.value}", icon=":material/error:")
        st.text(executions.error_text(detail))

    st.markdown("**Payload**")
    revealed = executions.revealed_payload(execution.id)
    if not detail.has_payload:
        st.caption("No payload is stored for this execution.")
    elif revealed is None:
        st.text("Input and output are hidden. Revealing them needs the support role and a reason.")
        with st.form("executions.reveal"):
            reason = st.text_input("Reason for revealing (goes into the audit log)", key="executions.reveal_reason")
            if st.form_submit_button("Reveal payload"):
                with widgets.known_errors_shown():
                    executions.reveal(actor, execution.id, reason)
                    st.rerun()
    else:
        st.caption("Revealed for you; this was recorded in the audit log.")
        st.code(revealed.input_text, language=None, wrap_lines=True)
        st.code(revealed.output_text or "(no output)", language=None, wrap_lines=True)

    if executions.is_stuck(detail):
        with st.form("executions.cancel"):
            reason = st.text_input("Reason for cancelling", key="executions.cancel_reason")
            if st.form_submit_button("Cancel this stuck execution"):
                with widgets.known_errors_shown():
                    executions.cancel_execution(actor, execution.id, reason)
                    st.rerun()

    st.markdown(f"**The user's other executions around {execution.created_at:%Y-%m-%d %H:%M:%S} UTC**")
    st.dataframe(executions.executions_around(detail), hide_index=True, key="executions.around")
    st.divider()

# -- the search ------------------------------------------------------------------------------------
cursors = executions.page_cursors(filters)
page = executions.search(filters, cursors[-1] if cursors else None)
st.caption(executions.describe_page(filters, len(cursors), len(page.rows)))
if page.rows.empty:
    st.info("No executions match this search.", icon=":material/info:")
else:
    st.dataframe(page.rows, hide_index=True, key="executions.results")

previous_column, next_column, _ = st.columns([1, 1, 4])
previous_column.button("Previous page", key="executions.previous", disabled=not cursors, on_click=executions.go_back)
next_column.button(
    "Next page",
    key="executions.next",
    disabled=page.next_cursor is None,
    on_click=executions.go_forward,
    args=(page.next_cursor,),
)

with st.expander("Export this search as CSV"):
    if not executions.may_export(actor):
        st.caption("Support and admins export executions.")
    else:
        st.caption(
            f"Writes every matching execution (up to {executions.export_limit():,}), never payloads; recorded in "
            "the audit log. The file is deleted from the server once downloaded."
        )
        if st.button("Prepare CSV", key="executions.export"):
            bar = st.progress(0.0, text="Counting…")
            with widgets.known_errors_shown():
                executions.export_csv(
                    actor,
                    filters,
                    lambda done, total: bar.progress(
                        min(1.0, done / max(total, 1)), text=f"{done:,} of {total:,} rows"
                    ),
                )
                bar.progress(1.0, text="Ready")
        path = executions.export_path()
        if path is not None:
            st.download_button(
                "Download CSV",
                data=executions.export_reader(path),
                file_name=executions.export_file_name(filters),
                mime="text/csv",
                key="executions.download",
            )
