"""Overview: how many executions ran, how many failed and how slow they were, on one time axis."""

import streamlit as st

from dashboard import auth, charts, data, formats, operate, widgets

st.title("Overview")
actor = auth.current_actor()
window = widgets.time_window()
totals = data.execution_totals(window)
pulse = data.platform_pulse()

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
    series = data.executions_over_time(window)
    incidents = data.incidents(series)
    st.plotly_chart(
        charts.overview_timeline(
            series,
            data.p95_latency_over_time(window),
            window=totals.window,
            grain=totals.grain,
            incidents=incidents,
        ),
        key="overview-timeline",
    )
    if not incidents.empty:
        first = incidents["bucket_start"].iloc[0]
        st.caption(
            f"{len(incidents)} incident marker(s): the error rate left its baseline, first at "
            f"{first:%Y-%m-%d %H:%M} UTC. The Errors page breaks them down by category."
        )

cache_ratio, flags_changed, dependencies = st.columns(3)
cache_ratio.metric(
    "Cache hit ratio (5 min)",
    "Redis down" if pulse.cache_down else formats.share(pulse.cache_hit_ratio),
    border=True,
    help="Hits per lookup over every cache tier and namespace in the last five minutes.",
)
flags_changed.metric(
    "Flags changed (24 h)",
    "—" if pulse.flags_changed_24h is None else formats.count(pulse.flags_changed_24h),
    border=True,
    help="Feature flags toggled or re-rolled from this dashboard in the last 24 hours (audit log).",
)
dependencies.metric(
    "Dependencies",
    pulse.health.value + (f": {', '.join(pulse.unhealthy)} down" if pulse.unhealthy else ""),
    border=True,
    help="The Health page has every dependency's check.",
)

st.subheader("Providers")
operate.provider_health(actor, key="overview.provider-health")
