"""Executions: find one user's executions among all of them, open one, reveal its payload, export a search."""

import streamlit as st

from core.domain.models import ErrorCategory, ExecutionStatus
from dashboard import formats, support, widgets
from queries.executions import SortKey

st.title("Executions")
window = widgets.time_window()
link = support.link_params()

with st.form("executions.filters"):
    user_column, status_column, category_column = st.columns([2, 1, 1])
    user = user_column.text_input(
        "User (email or id)", value=link.get("user", ""), key="executions.user", max_chars=support.MAX_BOX
    )
    statuses = ["", *(s.value for s in ExecutionStatus)]
    status = status_column.selectbox(
        "Status",
        statuses,
        index=statuses.index(link["status"]) if link.get("status") in statuses else 0,
        key="executions.status",
        format_func=lambda v: v or "any",
    )
    categories = ["", *(c.value for c in ErrorCategory)]
    category = category_column.selectbox(
        "Error category",
        categories,
        index=categories.index(link["category"]) if link.get("category") in categories else 0,
        key="executions.category",
        format_func=lambda v: v or "any",
    )
    provider_column, model_column, sort_column, order_column = st.columns(4)
    provider = provider_column.text_input(
        "Provider", value=link.get("provider", ""), key="executions.provider", max_chars=support.MAX_BOX
    )
    model = model_column.text_input(
        "Model", value=link.get("model", ""), key="executions.model", max_chars=support.MAX_BOX
    )
    sorts = [k.value for k in SortKey]
    sort = sort_column.selectbox(
        "Sort by", sorts, index=sorts.index(link["sort"]) if link.get("sort") in sorts else 0, key="executions.sort"
    )
    order = order_column.selectbox(
        "Order",
        ["desc", "asc"],
        index=1 if link.get("order") == "asc" else 0,
        key="executions.order",
        format_func={"desc": "highest / newest first", "asc": "lowest / oldest first"}.__getitem__,
    )
    if st.form_submit_button("Search", type="primary"):
        support.write_link(
            {
                "user": user,
                "status": status,
                "category": category,
                "provider": provider,
                "model": model,
                "sort": "" if sort == SortKey.TIME else sort,
                "order": "" if order == "desc" else order,
            }
        )
        st.rerun()

filters = support.filters_for(support.parse_execution_params(support.link_params()), window)

# -- one execution ---------------------------------------------------------------------------------
with st.form("executions.open"):
    id_column, button_column = st.columns([3, 1], vertical_alignment="bottom")
    typed_id = id_column.text_input("Open execution by id", key="executions.open_id", max_chars=support.MAX_BOX)
    if button_column.form_submit_button("Open execution"):
        support.open_execution(support.parse_id(typed_id))
        st.rerun()

opened = support.opened_execution()
if opened is not None:
    detail = support.execution_detail(opened)
    execution = detail.execution
    st.subheader(f"Execution {execution.id}")
    st.button("Close", key="executions.close", on_click=support.close_execution)
    status_metric, latency_metric, ttfb_metric, tokens_metric, cost_metric = st.columns(5)
    status_metric.metric("Status", execution.status.value, border=True)
    latency_metric.metric("Latency", formats.duration_ms(execution.latency_ms), border=True)
    ttfb_metric.metric("TTFB", formats.duration_ms(execution.ttfb_ms), border=True)
    tokens_metric.metric("Tokens in / out", f"{execution.input_tokens:,} / {execution.output_tokens:,}", border=True)
    cost_metric.metric("Cost", formats.usd(execution.cost_usd), border=True)
    st.table(support.detail_rows(detail))
    if execution.error_category is not None:
        st.error(
            f"{execution.error_category.value} · {execution.error_code or '—'}: {execution.error_message or ''}",
            icon=":material/error:",
        )

    st.markdown("**Payload**")
    revealed = support.revealed_payload(execution.id)
    if not detail.has_payload:
        st.caption("No payload is stored for this execution.")
    elif revealed is None:
        st.text("Input and output are hidden. Revealing them needs the support role and a reason.")
        with st.form("executions.reveal"):
            reason = st.text_input("Reason for revealing (goes into the audit log)", key="executions.reveal_reason")
            if st.form_submit_button("Reveal payload"):
                support.reveal(execution.id, reason)
                st.rerun()
    else:
        st.caption("Revealed for you; this was recorded in the audit log.")
        st.code(revealed.input_text, language=None, wrap_lines=True)
        st.code(revealed.output_text or "(no output)", language=None, wrap_lines=True)

    if execution.status in (ExecutionStatus.QUEUED, ExecutionStatus.RUNNING):
        with st.form("executions.cancel"):
            reason = st.text_input("Reason for cancelling", key="executions.cancel_reason")
            if st.form_submit_button("Cancel this stuck execution"):
                support.cancel_execution(execution.id, reason)
                st.rerun()

    st.markdown(f"**The user's other executions around {execution.created_at:%Y-%m-%d %H:%M:%S} UTC**")
    st.dataframe(support.executions_around(detail), hide_index=True, key="executions.around")
    st.divider()

# -- the search ------------------------------------------------------------------------------------
cursors = support.page_cursors(filters)
page = support.search(filters, cursors[-1] if cursors else None)
st.caption(support.describe_page(filters, len(cursors), len(page.rows)))
if page.rows.empty:
    st.info("No executions match this search.", icon=":material/info:")
else:
    st.dataframe(page.rows, hide_index=True, key="executions.results")

previous_column, next_column, _ = st.columns([1, 1, 4])
previous_column.button("Previous page", key="executions.previous", disabled=not cursors, on_click=support.go_back)
next_column.button(
    "Next page",
    key="executions.next",
    disabled=page.next_cursor is None,
    on_click=support.go_forward,
    args=(page.next_cursor,),
)

with st.expander("Export this search as CSV"):
    st.caption(f"Writes every matching execution (up to {support.EXPORT_MAX_ROWS:,}), never payloads.")
    if st.button("Prepare CSV", key="executions.export"):
        total = support.count_matching(filters)
        bar = st.progress(0.0, text="Exporting…")
        support.export_csv(
            filters, lambda done: bar.progress(min(1.0, done / max(total, 1)), text=f"{done:,} of {total:,} rows")
        )
        bar.progress(1.0, text="Ready")
    path = support.export_path()
    if path is not None:
        st.download_button(
            "Download CSV",
            data=support.export_reader(path),
            file_name=support.export_file_name(filters),
            mime="text/csv",
            key="executions.download",
        )
