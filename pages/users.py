"""Users: find a user by email, id or name, see their usage and bucket, and fix their account."""

import streamlit as st

from core.domain.models import ExecutionStatus, Tier, UserStatus
from dashboard import formats, support

st.title("Users")

with st.form("users.search"):
    text_column, button_column = st.columns([4, 1], vertical_alignment="bottom")
    typed = text_column.text_input(
        "Email, id or the start of a name",
        value=st.query_params.get("q", ""),
        key="users.query",
        max_chars=support.MAX_BOX,
        placeholder="ada.lovelace12@example.com, 12 or Ada Lo",
    )
    if button_column.form_submit_button("Find", type="primary"):
        support.write_user_link(query=typed, user_id=None)
        st.rerun()

chosen = support.linked_user_id()
query = st.query_params.get("q", "")
if chosen is None and query:
    matches = support.find_users(query)
    if not matches:
        st.info(f"No user matches “{query[:80]}”.", icon=":material/person_off:")
    elif len(matches) == 1:
        chosen = matches[0].id
    else:
        st.caption(f"{len(matches)} users match; pick one.")
        for match in matches:
            st.button(
                f"{match.email} · {match.display_name} · {match.tier.value} · #{match.id}",
                key=f"users.pick.{match.id}",
                on_click=support.write_user_link,
                kwargs={"query": query, "user_id": match.id},
            )

if chosen is not None:
    user = support.user(chosen)
    st.subheader(f"{user.display_name} · {user.email}")
    tier_metric, status_metric, created_metric, seen_metric = st.columns(4)
    tier_metric.metric("Tier", user.tier.value, border=True)
    status_metric.metric("Status", user.status.value, border=True)
    created_metric.metric("Created", f"{user.created_at:%Y-%m-%d}", border=True)
    seen_metric.metric("Last seen", f"{user.last_seen_at:%Y-%m-%d %H:%M}" if user.last_seen_at else "—", border=True)
    st.page_link(
        support.EXECUTIONS_PAGE,
        label="All of this user's executions",
        icon=":material/manage_search:",
        query_params={"user": str(user.id), "range": "30d"},
    )

    st.markdown("**Usage, last 30 days**")
    usage = support.usage(user.id)
    if usage.empty:
        st.caption("No executions in the last 30 days.")
    else:
        executions_total, errors_total, cost_total = st.columns(3)
        executions_total.metric("Executions", formats.count(int(usage["executions"].sum())))
        errors_total.metric("Errors", formats.count(int(usage["errors"].sum())))
        cost_total.metric("Cost", formats.usd(float(usage["cost_usd"].sum())))
        st.line_chart(usage.set_index("day")[["executions", "errors"]], height=220)

    st.markdown("**Rate-limit bucket**")
    bucket = support.rate_limit_bucket(user)
    if bucket is None:
        st.warning("Redis did not answer; the bucket cannot be shown.", icon=":material/cloud_off:")
    else:
        st.text(support.describe_bucket(bucket))

    st.markdown("**Feature flags for this user**")
    flags, problem = support.flag_evaluations(user)
    if flags is None:
        st.info(f"Flags cannot be evaluated: {problem}", icon=":material/flag:")
    elif flags.empty:
        st.caption("No flags are known.")
    else:
        st.dataframe(flags, hide_index=True, key="users.flags")

    st.markdown("**Recent executions**")
    recent = support.recent_executions(user.id)
    if recent.empty:
        st.caption("None in the last 30 days.")
    else:
        st.dataframe(recent, hide_index=True, key="users.recent")

    st.markdown("**Actions** (each needs a reason; all are recorded in the audit log)")
    tier_tab, status_tab, limit_tab, cancel_tab = st.tabs(
        ["Tier", "Suspend / restore", "Rate limit", "Stuck execution"]
    )
    with tier_tab, st.form("users.tier"):
        tiers = [t.value for t in Tier]
        new_tier = st.selectbox("New tier", tiers, index=tiers.index(user.tier.value), key="users.new_tier")
        reason = st.text_input("Reason", key="users.tier_reason", max_chars=1000)
        if st.form_submit_button("Change tier"):
            changed = support.change_tier(user.id, new_tier, reason)
            support.flash(f"{changed.email} is on the {changed.tier.value} tier.")
            st.rerun()
    with status_tab, st.form("users.status"):
        suspended = user.status is UserStatus.SUSPENDED
        reason = st.text_input("Reason", key="users.status_reason", max_chars=1000)
        if st.form_submit_button("Restore" if suspended else "Suspend"):
            changed = support.restore(user.id, reason) if suspended else support.suspend(user.id, reason)
            support.flash(f"{changed.email} is {changed.status.value}.")
            st.rerun()
    with limit_tab, st.form("users.ratelimit"):
        reason = st.text_input("Reason", key="users.ratelimit_reason", max_chars=1000)
        if st.form_submit_button("Reset rate limit"):
            support.reset_rate_limit(user, reason)
            support.flash(f"The rate-limit bucket of {user.email} is full again.")
            st.rerun()
    with cancel_tab, st.form("users.cancel"):
        stuck = ", ".join(s.value for s in (ExecutionStatus.QUEUED, ExecutionStatus.RUNNING))
        execution_id = st.text_input(f"Execution id ({stuck})", key="users.cancel_id", max_chars=support.MAX_BOX)
        reason = st.text_input("Reason", key="users.cancel_reason", max_chars=1000)
        if st.form_submit_button("Cancel execution"):
            support.cancel_execution(support.parse_id(execution_id), reason)
            support.flash(f"Execution {execution_id.strip()} is cancelled.")
            st.rerun()
    support.show_flash()
