"""Errors: the error rate by category over time, the top errors, and what is new or growing."""

import streamlit as st

from core.executions.spikes import detect_spikes
from dashboard import auth, formats, operate, widgets
from queries import errors

st.title("Errors")
actor = auth.current_actor()
window = operate.checked(widgets.time_window())
provider, model = operate.provider_model_filter("errors")

by_category = operate.error_rate_by_category(window, provider, model)
totals = errors.total_error_rate(by_category)
spikes = detect_spikes(totals)
executions, failed = int(totals["executions"].sum()), int(totals["errors"].sum())

if executions == 0:
    st.info("No executions in this range.", icon=":material/info:")
else:
    volume, rate, spike_count = st.columns(3)
    volume.metric("Executions", formats.count(executions), border=True)
    rate.metric("Error rate", formats.share(failed / executions), border=True, help="Failed and timed-out executions.")
    spike_count.metric("Spikes", formats.count(len(spikes)), border=True, help="Where the rate left its baseline.")
    st.subheader("Error rate by category")
    st.plotly_chart(operate.stacked_error_rate(by_category, spikes, window), key="errors-by-category")
    if not spikes.empty:
        first = spikes["bucket_start"].iloc[-1]
        st.warning(
            f"The error rate left its baseline at {first:%Y-%m-%d %H:%M} UTC "
            f"({spikes['rate'].iloc[-1]:.1%} against {spikes['baseline'].iloc[-1]:.1%}).",
            icon=":material/crisis_alert:",
        )

    st.subheader("New and escalating categories", help="Against the previous window of the same length.")
    changes = operate.category_changes(window, provider, model)
    changes["executions"] = [
        operate.executions_link(window, category=c, provider=provider, model=model) for c in changes["category"]
    ]
    st.dataframe(
        changes,
        hide_index=True,
        key="errors-changes",
        column_config={
            "rate": st.column_config.NumberColumn("Rate", format="percent"),
            "previous_rate": st.column_config.NumberColumn("Previous rate", format="percent"),
            "change": st.column_config.NumberColumn("Change", format="%.2fx"),
            "executions": st.column_config.LinkColumn("Drill down", display_text="Executions →"),
        },
    )

    st.subheader("Top errors per category")
    top = operate.top_errors(window, provider, model)
    top["executions_link"] = [
        operate.executions_link(window, category=c, provider=provider, model=model) for c in top["category"]
    ]
    st.dataframe(
        top,
        hide_index=True,
        key="errors-top",
        column_config={
            "share_of_category": st.column_config.NumberColumn("Share of category", format="percent"),
            "executions_link": st.column_config.LinkColumn("Drill down", display_text="Executions →"),
        },
    )

st.subheader("Provider health")
operate.provider_health(actor, key="errors.health")


@st.fragment(run_every=operate.LIVE_EVERY)
def live() -> None:
    st.subheader("Live, from Prometheus")
    operate.live_panel(operate.draw_errors_live)


live()
