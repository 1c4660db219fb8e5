"""Users: find a user by email, id or name, see their usage and bucket, and fix their account."""

import streamlit as st

from core.domain.models import UserStatus
from dashboard import auth, charts, executions, formats, users, widgets
from dashboard.untrusted import md

st.title("Users")
actor = auth.current_actor()

with st.form("users.search"):
    text_column, button_column = st.columns([4, 1], vertical_alignment="bottom")
    typed = text_column.text_input(
        "Email, id or the start of a name",
        value=users.linked_query(),
        key="users.query",
        max_chars=executions.MAX_BOX,
        placeholder="ada.lovelace12@example.com, 12 or Ada Lo",
    )
    if button_column.form_submit_button("Find", type="primary"):
        users.write_user_link(query=typed, user_id=None)
        st.rerun()

chosen = users.linked_user_id()
query = users.linked_query()
if chosen is None and query:
    matches = users.find_users(query)
    if not matches:
        st.info(f"No user matches “{md(query[:80])}”.", icon=":material/person_off:")
    elif len(matches) == 1:
        chosen = matches[0].id
    else:
        st.caption(f"{len(matches)} users match; pick one.")
        for match in matches:
            st.button(
                md(users.pick_label(match)),
                key=f"users.pick.{match.id}",
                on_click=users.write_user_link,
                kwargs={"query": query, "user_id": match.id},
            )

if chosen is not None:
    user = users.user(chosen)
    st.subheader(f"{md(user.display_name)} · {md(user.email)}")
    tier_metric, status_metric, created_metric, seen_metric = st.columns(4)
    tier_metric.metric("Tier", user.tier.value, border=True)
    status_metric.metric("Status", user.status.value, border=True)
    created_metric.metric("Created", f"{user.created_at:%Y-%m-%d}", border=True)
    seen_metric.metric("Last seen", f"{user.last_seen_at:%Y-%m-%d %H:%M}" if user.last_seen_at else "—", border=True)
    st.page_link(
        executions.EXECUTIONS_PAGE,
        label="All of this user's executions",
        icon=":material/manage_search:",
        query_params={"user": str(user.id), "range": "30d"},
    )

    st.markdown(f"**Usage, last {users.USAGE_DAYS} days**")
    usage = users.usage(user.id)
    if usage.per_day.empty:
        st.caption(f"No executions in the last {users.USAGE_DAYS} days.")
    else:
        executions_total, errors_total, cost_total = st.columns(3)
        executions_total.metric("Executions", formats.count(usage.executions))
        errors_total.metric("Errors", formats.count(usage.errors))
        cost_total.metric("Cost", formats.usd(usage.cost_usd))
        st.plotly_chart(charts.usage_per_day(usage.per_day), key="users.usage")

    st.markdown("**Rate-limit bucket**")
    bucket = users.rate_limit_bucket(actor, user)
    if bucket is None:
        st.warning("Redis did not answer; the bucket cannot be shown.", icon=":material/cloud_off:")
    else:
        st.text(users.describe_bucket(bucket))

    st.markdown("**Feature flags for this user**")
    flags, problem = users.flag_evaluations(user)
    if flags is None:
        st.info(f"Flags cannot be evaluated: {md(problem)}", icon=":material/flag:")
    elif flags.empty:
        st.caption("No flags are known.")
    else:
        st.dataframe(flags, hide_index=True, key="users.flags")

    st.markdown("**Recent executions**")
    recent = users.recent_executions(user.id)
    if recent.empty:
        st.caption(f"None in the last {users.USAGE_DAYS} days.")
    else:
        st.dataframe(recent, hide_index=True, key="users.recent")

    st.markdown("**Actions** (each needs a reason; all are recorded in the audit log)")
    tier_tab, status_tab, limit_tab, cancel_tab = st.tabs(
        ["Tier", "Suspend / restore", "Rate limit", "Stuck execution"]
    )
    with tier_tab, st.form("users.tier"):
        new_tier = st.selectbox("New tier", users.TIERS, index=users.TIERS.index(user.tier.value), key="users.new_tier")
        reason = st.text_input("Reason", key="users.tier_reason", max_chars=1000)
        if st.form_submit_button("Change tier"):
            with widgets.known_errors_shown():
                changed = users.change_tier(actor, user.id, new_tier, reason)
                widgets.flash(f"{md(changed.email)} is on the {changed.tier.value} tier.")
                st.rerun()
    with status_tab, st.form("users.status"):
        suspended = user.status is UserStatus.SUSPENDED
        reason = st.text_input("Reason", key="users.status_reason", max_chars=1000)
        if st.form_submit_button("Restore" if suspended else "Suspend"):
            with widgets.known_errors_shown():
                changed = users.switch_status(actor, user, reason)
                widgets.flash(f"{md(changed.email)} is {changed.status.value}.")
                st.rerun()
    with limit_tab, st.form("users.ratelimit"):
        reason = st.text_input("Reason", key="users.ratelimit_reason", max_chars=1000)
        if st.form_submit_button("Reset rate limit"):
            with widgets.known_errors_shown():
                users.reset_rate_limit(actor, user, reason)
                widgets.flash(f"The rate-limit bucket of {md(user.email)} is full again.")
                st.rerun()
    with cancel_tab, st.form("users.cancel"):
        execution_id = st.text_input(
            f"Execution id ({users.STUCK_STATUSES})", key="users.cancel_id", max_chars=executions.MAX_BOX
        )
        reason = st.text_input("Reason", key="users.cancel_reason", max_chars=1000)
        if st.form_submit_button("Cancel execution"):
            with widgets.known_errors_shown():
                executions.cancel_execution(actor, executions.parse_id(execution_id), reason)
                widgets.flash(f"Execution {md(execution_id.strip())} is cancelled.")
                st.rerun()
    widgets.show_flash()
