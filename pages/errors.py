"""Errors: the error rate by category over time, the top errors, and what is new or growing."""

import streamlit as st

from dashboard import auth, charts, errors, formats, live, providers, widgets

st.title("Errors")
actor = auth.current_actor()
window = widgets.time_window(within_retention=True)
provider, model = widgets.provider_model_filter("errors")
rates = errors.error_rates(window, provider, model)

if rates.executions == 0:
    st.info("No executions in this range.", icon=":material/info:")
else:
    volume, rate, spike_count = st.columns(3)
    volume.metric("Executions", formats.count(rates.executions), border=True)
    rate.metric("Error rate", formats.share(rates.rate), border=True, help="Failed and timed-out executions.")
    spike_count.metric(
        "Spikes", formats.count(len(rates.spikes)), border=True, help="Where the rate left its baseline."
    )
    st.subheader("Error rate by category")
    st.plotly_chart(charts.stacked_error_rate(rates.by_category, rates.spikes, window), key="errors-by-category")
    if rates.spike_notice:
        st.warning(rates.spike_notice, icon=":material/crisis_alert:")

    st.subheader("New and escalating categories", help="Against the previous window of the same length.")
    st.dataframe(
        errors.category_changes(window, provider, model),
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
    st.dataframe(
        errors.top_errors(window, provider, model),
        hide_index=True,
        key="errors-top",
        column_config={
            "share_of_category": st.column_config.NumberColumn("Share of category", format="percent"),
            "executions_link": st.column_config.LinkColumn("Drill down", display_text="Executions →"),
        },
    )

st.subheader("Provider health")
providers.provider_health(actor, key="errors.health")


@st.fragment(run_every=live.LIVE_EVERY)
def live_errors() -> None:
    st.subheader("Live, from Prometheus")
    live.live_panel(live.api_errors)


live_errors()
