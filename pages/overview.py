"""Overview: how many executions ran, how many failed and how slow they were, on one time axis."""

import streamlit as st

from dashboard import auth, charts, formats, overview, providers, widgets

st.title("Overview")
actor = auth.current_actor()
window = widgets.time_window()
totals = overview.execution_totals(window)
pulse = overview.platform_pulse()

if totals.executions == 0:
    st.info("No executions in this range.", icon=":material/info:")
else:
    executions, error_rate, p95_latency, cost = st.columns(4)
    executions.metric("Executions", formats.count(totals.executions), border=True)
    error_rate.metric(
        "Error rate",
        formats.share(totals.error_rate),
        border=True,
        help="Failed and timed-out executions (those with an error category) per execution.",
    )
    p95_latency.metric(
        "p95 latency",
        formats.duration_ms(totals.p95_latency_ms),
        border=True,
        help="95th percentile of execution latency, from the rollups' histograms (within 2 %).",
    )
    cost.metric(
        "Cost",
        formats.usd(totals.cost_usd),
        border=True,
        help=f"{formats.usd(totals.cost_per_execution_usd)} per execution on average.",
    )
    timeline = overview.timeline(window)
    st.plotly_chart(
        charts.overview_timeline(
            timeline.executions,
            timeline.latency,
            window=totals.window,
            grain=totals.grain,
            incidents=timeline.incidents,
        ),
        key="overview-timeline",
    )
    if not timeline.incidents.empty:
        st.caption(overview.incidents_caption(timeline.incidents))

cache_ratio, flags_changed, dependencies = st.columns(3)
cache_ratio.metric(
    "Cache hit ratio (5 min)",
    overview.cache_hit_ratio_text(pulse),
    border=True,
    help="Hits per lookup over every cache tier and namespace in the last five minutes.",
)
flags_changed.metric(
    "Flags changed (24 h)",
    overview.flags_changed_text(pulse),
    border=True,
    help="Feature flags toggled or re-rolled from this dashboard in the last 24 hours (audit log).",
)
dependencies.metric(
    "Dependencies",
    overview.dependencies_text(pulse),
    border=True,
    help="The Health page has every dependency's check.",
)

st.subheader("Providers")
providers.provider_health(actor, key="overview.provider-health")
