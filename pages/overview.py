"""Overview: how many executions ran, how many failed and how slow they were, on one time axis."""

import streamlit as st

from dashboard import charts, data, formats, widgets

st.title("Overview")
window = widgets.time_window()
totals = data.execution_totals(window)

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
    st.plotly_chart(
        charts.overview_timeline(
            data.executions_over_time(window),
            data.p95_latency_over_time(window),
            window=totals.window,
            grain=totals.grain,
        ),
        key="overview-timeline",
    )
