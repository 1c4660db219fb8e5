"""Latency: p50/p90/p95/p99 over time by provider and model, time to first token, distribution, slowest."""

import streamlit as st

from dashboard import auth, charts, latency, live, widgets
from queries.latency import Metric, SeriesBy

st.title("Latency")
actor = auth.current_actor()
window = widgets.time_window(within_retention=True)
provider, model = widgets.provider_model_filter("latency")
left, right = st.columns(2)
by = SeriesBy(
    left.segmented_control(
        "One line per", [s.value for s in SeriesBy], default=SeriesBy.ALL.value, key="latency.by", required=True
    )
    or SeriesBy.ALL.value
)
quantiles = right.multiselect("Percentiles", latency.PERCENTILES, default=latency.SHOWN_BY_DEFAULT, key="latency.q")
shown = quantiles or ["p95"]
st.caption(latency.bound_caption(window))

execution_latency = latency.percentiles(window, Metric.LATENCY, by, provider, model)
if execution_latency.empty:
    st.info("No execution finished in this range.", icon=":material/info:")
else:
    st.plotly_chart(
        charts.percentile_chart(execution_latency, shown, window, "Execution latency"), key="latency-percentiles"
    )
    ttfb = latency.percentiles(window, Metric.TTFB, by, provider, model)
    st.plotly_chart(charts.percentile_chart(ttfb, shown, window, "Time to first token"), key="latency-ttfb")
    st.plotly_chart(
        charts.distribution_chart(latency.distribution(window, Metric.LATENCY, provider, model), "Distribution"),
        key="latency-distribution",
    )
    st.subheader("Slowest executions")
    st.dataframe(latency.slowest(window, provider, model), hide_index=True, key="latency-slowest")


@st.fragment(run_every=live.LIVE_EVERY)
def live_response_times() -> None:
    st.subheader("Live API response times, from Prometheus")
    live.live_panel(live.api_response_times)


live_response_times()
