"""Feature flags: every flag in every environment from Unleash; change them with a reason; evaluate for a user."""

import streamlit as st

from dashboard import auth, flags, widgets
from dashboard.untrusted import md

st.title("Feature flags")
actor = auth.current_actor()
widgets.show_flash()

listing = flags.listing()
if not listing.live:
    st.warning(flags.down_banner(listing), icon=":material/cloud_off:")
catalog = listing.catalog
names = flags.flag_names(catalog)

table_tab, evaluate_tab, history_tab = st.tabs(["Flags", "Evaluate for a user", "History"])

with table_tab:
    search, projects, types, state, staleness = st.columns([3, 2, 2, 2, 2])
    filters = flags.FlagFilters(
        search=search.text_input("Search", key="flags.search", placeholder="name or description"),
        projects=projects.multiselect("Project", catalog.projects, key="flags.projects"),
        types=types.multiselect("Type", flags.flag_types(catalog), key="flags.types"),
        state=state.selectbox("State", flags.STATES, key="flags.state"),
        staleness=staleness.selectbox("Staleness", flags.STALENESS, key="flags.staleness"),
    )
    shown = flags.filter_flags(catalog, filters)
    st.caption(flags.shown_caption(shown, listing))
    st.dataframe(
        flags.flags_table(shown, catalog.environments),
        hide_index=True,
        key="flags.table",
        column_config={"Last change": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")},
    )

    st.subheader("Change a flag")
    if not flags.can_change(actor):
        st.info(f"The {actor.role.value} role can view flags; product and admin roles can change them.")
    elif not listing.live:
        st.error("Unleash is not answering: changes are refused until it does.", icon=":material/block:")
    else:
        with st.form("flags.change"):
            flag_column, env_column, action_column, percent_column = st.columns([3, 2, 2, 1])
            name = flag_column.selectbox("Flag", names, key="flags.change.flag")
            environment = env_column.selectbox("Environment", catalog.environments, key="flags.change.environment")
            action = action_column.selectbox("Change", flags.ACTIONS, key="flags.change.action")
            percent = percent_column.number_input("Rollout %", 0, 100, 100, step=5, key="flags.change.percent")
            reason = st.text_input("Reason (goes into the audit log)", key="flags.change.reason", max_chars=1000)
            confirmed = st.checkbox(
                "I have checked the flag, the environment and the change", key="flags.change.confirm"
            )
            submitted = st.form_submit_button("Apply change", type="primary")
        if submitted and not confirmed:
            st.error("Tick the confirmation box to apply the change.", icon=":material/error:")
        elif submitted and (name is None or environment is None):
            st.error("Pick a flag and an environment.", icon=":material/error:")
        elif submitted:
            with widgets.known_errors_shown():
                widgets.flash(md(flags.apply_change(actor, name, environment, action, int(percent), reason)))
                st.rerun()

with evaluate_tab:
    st.caption("What the real Unleash client of this dashboard answers, from Unleash or its backup file.")
    with st.form("flags.evaluate"):
        user_id = st.text_input("User id", key="flags.evaluate.user")
        properties = st.text_area("Properties, one per line", key="flags.evaluate.properties", placeholder="tier=pro")
        evaluate = st.form_submit_button("Evaluate")
    if evaluate:
        with widgets.known_errors_shown():
            st.dataframe(flags.evaluate_for(user_id, properties), hide_index=True, key="flags.evaluation")

with history_tab:
    picked = st.selectbox("Flag", names, key="flags.history.flag", index=None, placeholder="Pick a flag")
    if picked:
        history, events, audit = flags.history_tables(actor, picked)
        left, right = st.columns(2)
        with left:
            st.markdown("**Unleash event log**")
            if history.problem:
                st.warning(md(history.problem), icon=":material/cloud_off:")
            st.dataframe(events, hide_index=True, key="flags.history.events")
        with right:
            st.markdown("**Our audit log**")
            st.dataframe(audit, hide_index=True, key="flags.history.audit")
