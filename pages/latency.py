"""Latency: p50/p90/p95/p99 over time by provider and model, time to first token, distribution, slowest."""

import streamlit as st

from dashboard import auth, formats, operate, widgets
from queries.latency import RELATIVE_ERROR_BOUND, Metric, SeriesBy

st.title("Latency")
actor = auth.current_actor()
window = operate.checked(widgets.time_window())
provider, model = operate.provider_model_filter("latency")
left, right = st.columns(2)
by = SeriesBy(
    left.segmented_control(
        "One line per", [s.value for s in SeriesBy], default=SeriesBy.ALL.value, key="latency.by", required=True
    )
    or SeriesBy.ALL.value
)
quantiles = right.multiselect(
    "Percentiles", ["p50", "p90", "p95", "p99"], default=["p50", "p95", "p99"], key="latency.q"
)
st.caption(
    f"Percentiles from the rollups' histograms: within {RELATIVE_ERROR_BOUND:.2%} of the exact value at the "
    f"percentile's rank; one point per {operate.grain_of(window).value}."
)

latency = operate.percentiles(window, Metric.LATENCY, by, provider, model)
if latency.empty:
    st.info("No execution finished in this range.", icon=":material/info:")
else:
    st.plotly_chart(
        operate.percentile_chart(latency, quantiles or ["p95"], window, "Execution latency"), key="latency-percentiles"
    )
    ttfb = operate.percentiles(window, Metric.TTFB, by, provider, model)
    st.plotly_chart(
        operate.percentile_chart(ttfb, quantiles or ["p95"], window, "Time to first token"), key="latency-ttfb"
    )
    st.plotly_chart(
        operate.distribution_chart(operate.distribution(window, Metric.LATENCY, provider, model), "Distribution"),
        key="latency-distribution",
    )
    st.subheader("Slowest executions")
    slowest = operate.slowest(window, provider, model)
    slowest["latency"] = [formats.duration_ms(v) for v in slowest["latency_ms"]]
    st.dataframe(slowest, hide_index=True, key="latency-slowest")


@st.fragment(run_every=operate.LIVE_EVERY)
def live() -> None:
    st.subheader("Live API response times, from Prometheus")
    operate.live_panel(operate.draw_api_live)


live()
