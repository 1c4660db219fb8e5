"""Cache: what Redis reports, how often our cache tiers hit, what the keyspace holds, and flushing it safely."""

import streamlit as st

from core.cache.models import MemoryLevel
from dashboard import auth, cache, charts, formats, widgets
from dashboard.untrusted import md

st.title("Cache")
actor = auth.current_actor()
window_label = st.segmented_control(
    "Hit-ratio window", list(cache.WINDOWS), default=cache.DEFAULT_WINDOW, key="cache.window", required=True
)
minutes = cache.WINDOWS[window_label or cache.DEFAULT_WINDOW]


@st.fragment(run_every="15s")
def redis_panel() -> None:
    state = cache.redis_state(minutes)
    if state.down or state.figures is None:
        st.error(cache.down_message(state), icon=":material/cloud_off:")
        return
    figures, rates = state.figures, state.rates
    st.subheader(f"Redis {figures.server} {figures.version}")
    memory, policy, ops, clients, fragmentation = st.columns(5)
    memory.metric("Memory", cache.memory_text(figures), border=True)
    policy.metric("Eviction policy", figures.eviction_policy, border=True)
    ops.metric("Ops / s", formats.count(figures.ops_per_second), border=True)
    clients.metric("Clients", formats.count(figures.connected_clients), border=True)
    fragmentation.metric("Fragmentation", cache.fragmentation_text(figures), border=True)
    notice = cache.memory_notice(figures)
    if notice and figures.memory_level == MemoryLevel.ALARM:
        st.error(notice, icon=":material/warning:")
    elif notice:
        st.warning(notice, icon=":material/warning:")
    hit_ratio, evictions, expirations, keys = st.columns(4)
    st.caption(cache.rates_caption(rates))
    hit_ratio.metric("Keyspace hit ratio", formats.share(rates.hit_ratio if rates else None), border=True)
    evictions.metric("Evictions / s", cache.per_second_text(rates.evictions_per_second if rates else None), border=True)
    expirations.metric(
        "Expirations / s", cache.per_second_text(rates.expirations_per_second if rates else None), border=True
    )
    keys.metric("Keys", formats.count(figures.keys), border=True)
    if figures.cluster:
        st.caption(cache.cluster_caption(figures))
        st.dataframe(
            cache.nodes_frame(figures),
            hide_index=True,
            key="cache.nodes",
            column_config={"memory share": st.column_config.NumberColumn(format="percent")},
        )

    st.subheader(f"Our cache tiers, last {window_label}")
    counts = cache.counts_frame(minutes)
    if counts.empty:
        st.info("No cache lookups in this window yet.", icon=":material/info:")
    else:
        st.dataframe(
            cache.tier_totals(counts),
            hide_index=True,
            key="cache.tiers",
            column_config={"hit ratio": st.column_config.NumberColumn(format="percent")},
        )
        st.dataframe(
            counts,
            hide_index=True,
            key="cache.namespaces",
            column_config={"hit ratio": st.column_config.NumberColumn(format="percent")},
        )
        by = st.segmented_control(
            "Hit ratio over time by",
            list(cache.RATIO_BY),
            default="tier",
            key="cache.ratio-by",
            format_func=cache.RATIO_BY.__getitem__,
            required=True,
        )
        ratio = cache.ratio_over_time(minutes, by=by or "tier")
        st.plotly_chart(charts.hit_ratio_chart(ratio, cache.TIER_ORDER), key="cache.ratio-chart")


redis_panel()

st.subheader("Keys per namespace")
sample = cache.key_sample()
if sample is None:
    st.caption("No key sample while Redis is down.")
else:
    st.caption(cache.sample_caption(sample))
    st.dataframe(cache.sample_frame(sample), hide_index=True, key="cache.sample")
    if len(sample.nodes) > 1:
        st.dataframe(cache.scan_frame(sample), hide_index=True, key="cache.sample-nodes")
    if cache.has_ttls(sample):
        st.plotly_chart(charts.ttl_chart(sample), key="cache.ttl-chart")

st.subheader("Look up a key")
if not cache.may_look_up(actor):
    st.caption("Operators and admins look cache keys up.")
else:
    with st.form("cache.lookup"):
        key = st.text_input("Key", key="cache.lookup.key", placeholder=cache.example_key())
        looked = st.form_submit_button("Look up")
    if looked:
        with widgets.known_errors_shown():
            found = cache.lookup(actor, key)
            if found.exists:
                st.json(cache.lookup_summary(found))
            else:
                st.info(f"No key {md(found.key)}.", icon=":material/search_off:")

st.subheader("Invalidate")
if not cache.may_invalidate(actor):
    st.caption("Operators invalidate cache namespaces and tiers.")
else:
    with st.form("cache.invalidate"):
        target = st.selectbox(
            "What to invalidate", list(cache.TARGETS), key="cache.target", format_func=cache.TARGETS.__getitem__
        )
        reason = st.text_input("Reason (goes into the audit log)", key="cache.reason", max_chars=1000)
        confirmed = st.checkbox("I understand every key of it will be reloaded from PostgreSQL", key="cache.confirm")
        submitted = st.form_submit_button("Invalidate", type="primary")
    if submitted and not confirmed:
        st.warning("Tick the confirmation first: nothing was invalidated.", icon=":material/warning:")
    elif submitted:
        with widgets.known_errors_shown():
            result = cache.invalidate(actor, target, reason)
            st.success(cache.invalidated_message(result), icon=":material/done:")
