"""Feature flags: every flag in every environment from Unleash; change them with a reason; evaluate for a user."""

import streamlit as st

from core.domain.exceptions import DependencyUnavailable, InvalidInput
from core.domain.rbac import PermissionDenied
from core.flags.models import FlagError
from dashboard import auth
from dashboard import flags as data

st.title("Feature flags")
actor = auth.current_actor()

notice = st.session_state.pop("flags.notice", None)
if notice:
    st.success(notice, icon=":material/check_circle:")

try:
    listing = data.listing()
except (FlagError, DependencyUnavailable) as exc:
    st.error(str(exc), icon=":material/cloud_off:")
    st.stop()
if not listing.live:
    st.warning(data.down_banner(listing), icon=":material/cloud_off:")
catalog = listing.catalog
names = [flag.name for flag in catalog.flags]

table_tab, evaluate_tab, history_tab = st.tabs(["Flags", "Evaluate for a user", "History"])

with table_tab:
    search, projects, types, state, staleness = st.columns([3, 2, 2, 2, 2])
    filters = data.FlagFilters(
        search=search.text_input("Search", key="flags.search", placeholder="name or description"),
        projects=projects.multiselect("Project", catalog.projects, key="flags.projects"),
        types=types.multiselect("Type", sorted({flag.type for flag in catalog.flags}), key="flags.types"),
        state=state.selectbox("State", data.STATES, key="flags.state"),
        staleness=staleness.selectbox("Staleness", data.STALENESS, key="flags.staleness"),
    )
    shown = data.filter_flags(catalog, filters)
    st.caption(f"{len(shown)} of {len(catalog.flags)} flags · read {data.age_text(listing.age_seconds())} ago")
    st.dataframe(
        data.flags_table(shown, catalog.environments),
        hide_index=True,
        key="flags.table",
        column_config={"Last change": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")},
    )

    st.subheader("Change a flag")
    if not data.can_change(actor):
        st.info(f"The {actor.role.value} role can view flags; product and admin roles can change them.")
    elif not listing.live:
        st.error("Unleash is not answering: changes are refused until it does.", icon=":material/block:")
    else:
        with st.form("flags.change"):
            flag_column, env_column, action_column, percent_column = st.columns([3, 2, 2, 1])
            name = flag_column.selectbox("Flag", names, key="flags.change.flag")
            environment = env_column.selectbox("Environment", catalog.environments, key="flags.change.environment")
            action = action_column.selectbox("Change", data.ACTIONS, key="flags.change.action")
            percent = percent_column.number_input("Rollout %", 0, 100, 100, step=5, key="flags.change.percent")
            reason = st.text_input("Reason (goes into the audit log)", key="flags.change.reason", max_chars=1000)
            confirmed = st.checkbox(
                "I have checked the flag, the environment and the change", key="flags.change.confirm"
            )
            submitted = st.form_submit_button("Apply change", type="primary")
        if submitted:
            if not confirmed:
                st.error("Tick the confirmation box to apply the change.", icon=":material/error:")
            elif name is None or environment is None:
                st.error("Pick a flag and an environment.", icon=":material/error:")
            else:
                try:
                    message = data.apply_change(actor, name, environment, action, int(percent), reason)
                except (FlagError, DependencyUnavailable, InvalidInput, PermissionDenied) as exc:
                    st.error(str(exc), icon=":material/error:")
                else:
                    st.session_state["flags.notice"] = message
                    st.rerun()

with evaluate_tab:
    st.caption("What the real Unleash client of this dashboard answers, from Unleash or its backup file.")
    with st.form("flags.evaluate"):
        user_id = st.text_input("User id", key="flags.evaluate.user")
        properties = st.text_area("Properties, one per line", key="flags.evaluate.properties", placeholder="tier=pro")
        evaluate = st.form_submit_button("Evaluate")
    if evaluate:
        try:
            st.dataframe(data.evaluate_for(user_id, properties), hide_index=True, key="flags.evaluation")
        except (FlagError, DependencyUnavailable, InvalidInput) as exc:
            st.error(str(exc), icon=":material/error:")

with history_tab:
    picked = st.selectbox("Flag", names, key="flags.history.flag", index=None, placeholder="Pick a flag")
    if picked:
        history, events, audit = data.history_tables(picked)
        left, right = st.columns(2)
        with left:
            st.markdown("**Unleash event log**")
            if history.problem:
                st.warning(history.problem, icon=":material/cloud_off:")
            st.dataframe(events, hide_index=True, key="flags.history.events")
        with right:
            st.markdown("**Our audit log**")
            st.dataframe(audit, hide_index=True, key="flags.history.audit")
