"""The Cache page's data and charts: Redis figures, our hit ratios, the key sample, lookups and flushes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
import plotly.graph_objects as go

from core.cache import keys
from core.cache.keys import TIER_POLICIES, CacheTier, Namespace, namespaces_of
from core.cache.models import InvalidationResult, KeyLookup, KeySample, MemoryLevel, RedisFigures, RedisRates
from core.cache.service import CacheService, NamespaceInvalidation, TierInvalidation
from core.cache.stats import MEMORY_LAYER
from core.domain.exceptions import RedisUnavailable
from core.domain.models import Actor
from core.domain.rbac import Permission, can
from dashboard.services import services

REDIS_DOWN = "Redis is down"
WINDOWS: dict[str, int] = {"5 min": 5, "1 h": 60}
"""Hit-ratio windows offered on the page, in minutes."""
TIER_ORDER = [MEMORY_LAYER, *(tier.value for tier in CacheTier)]


def cache_service() -> CacheService:
    """Return the process's cache service."""
    return services().cache_admin


@dataclass(frozen=True)
class RedisState:
    """Redis as the page sees it: its figures and rates, or why there are none."""

    figures: RedisFigures | None
    rates: RedisRates | None
    problem: str | None

    @property
    def down(self) -> bool:
        return self.figures is None


def redis_state(window_minutes: int) -> RedisState:
    """Read INFO now and the rates over about ``window_minutes`` from kept samples; say so when Redis is down."""
    service = cache_service()
    try:
        figures = service.redis_figures()
    except RedisUnavailable as exc:
        return RedisState(None, None, str(exc))
    return RedisState(figures, service.redis_rates(figures, window_seconds=window_minutes * 60), None)


def memory_text(figures: RedisFigures) -> str:
    """Write used memory against maxmemory: '412.0 MiB of 1.0 GiB (40.2 %)'."""
    used = bytes_text(figures.used_memory)
    if not figures.maxmemory:
        return f"{used} (no maxmemory)"
    return f"{used} of {bytes_text(figures.maxmemory)} ({figures.memory_share * 100:.1f} %)"  # type: ignore[operator]


def memory_notice(figures: RedisFigures) -> str | None:
    """Say when memory is at 80 % or 95 % of maxmemory (naming the primaries of a cluster that are); else None."""
    level = figures.memory_level
    if level not in (MemoryLevel.WARNING, MemoryLevel.ALARM):
        return None
    share, after = ("95 %", ": keys are being evicted.") if level is MemoryLevel.ALARM else ("80 %", ".")
    if figures.cluster:
        nodes = ", ".join(node.node for node in figures.nodes if node.memory_level is level)
        return f"Memory of {nodes} is at {share} of its maxmemory or more{after}"
    return f"Memory is at {share} of maxmemory or more{after}"


def cluster_caption(figures: RedisFigures) -> str:
    """Say how a cluster's figures were put together from its primaries."""
    return (
        f"A Redis Cluster of {len(figures.nodes)} primaries: memory, clients, ops/s, keys and the rates are summed "
        "over them; the memory warning and alarm follow the fullest node, which evicts on its own maxmemory."
    )


def nodes_frame(figures: RedisFigures) -> pd.DataFrame:
    """Return one row per primary: its memory against its own maxmemory, keys, clients, ops/s and evictions."""
    return pd.DataFrame(
        [
            {
                "node": node.node,
                "memory": bytes_text(node.used_memory),
                "maxmemory": bytes_text(node.maxmemory) if node.maxmemory else "none",
                "memory share": node.memory_share,
                "level": node.memory_level.value,
                "keys": node.keys,
                "clients": node.connected_clients,
                "ops / s": node.ops_per_second,
                "evicted keys": node.evicted_keys,
            }
            for node in figures.nodes
        ],
        columns=["node", "memory", "maxmemory", "memory share", "level", "keys", "clients", "ops / s", "evicted keys"],
    )


def bytes_text(amount: float) -> str:
    """Write a byte count in binary units."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(amount) < 1024 or unit == "TiB":
            return f"{amount:,.0f} {unit}" if unit == "B" else f"{amount:,.1f} {unit}"
        amount /= 1024
    return f"{amount:,.1f} TiB"


def ttl_text(seconds: float | None) -> str:
    """Write a TTL in the largest sensible unit."""
    if seconds is None:
        return "—"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s"


def counts_frame(minutes: int) -> pd.DataFrame:
    """Return hits, misses, errors and hit ratio per tier and namespace over the last ``minutes`` minutes."""
    rows = [
        {
            "tier": c.tier,
            "namespace": c.namespace,
            "hits": c.hits,
            "misses": c.misses,
            "errors": c.errors,
            "hit ratio": c.hit_ratio,
        }
        for c in cache_service().counts(minutes)
    ]
    frame = pd.DataFrame(rows, columns=["tier", "namespace", "hits", "misses", "errors", "hit ratio"])
    if frame.empty:
        return frame
    frame["order"] = frame["tier"].map({t: i for i, t in enumerate(TIER_ORDER)}).fillna(len(TIER_ORDER))
    return frame.sort_values(["order", "namespace"]).drop(columns="order").reset_index(drop=True)


def tier_totals(frame: pd.DataFrame) -> pd.DataFrame:
    """Sum a counts frame per tier, with each tier's hit ratio."""
    if frame.empty:
        return pd.DataFrame(columns=["tier", "hits", "misses", "errors", "hit ratio"])
    totals = frame.groupby("tier", sort=False)[["hits", "misses", "errors"]].sum().reset_index()
    decided = totals["hits"] + totals["misses"]
    totals["hit ratio"] = (totals["hits"] / decided).where(decided > 0)
    return totals


def ratio_over_time(minutes: int, *, by: str = "tier") -> pd.DataFrame:
    """Return the hit ratio per minute and tier (or ``by="series"``: tier / namespace) over the last ``minutes``."""
    rows = [
        {
            "minute": datetime.fromtimestamp(minute * 60, UTC),
            "tier": c.tier,
            "series": f"{c.tier} / {c.namespace}",
            "hits": c.hits,
            "misses": c.misses,
        }
        for minute, c in cache_service().counts_per_minute(minutes)
    ]
    frame = pd.DataFrame(rows, columns=["minute", "tier", "series", "hits", "misses"])
    if frame.empty:
        return frame.assign(**{"hit ratio": pd.Series(dtype=float)})
    frame = frame.groupby(["minute", by], as_index=False)[["hits", "misses"]].sum()
    decided = frame["hits"] + frame["misses"]
    frame["hit ratio"] = (frame["hits"] / decided).where(decided > 0)
    return frame


def ratio_chart(frame: pd.DataFrame) -> go.Figure:
    """Draw the hit ratio over time, one line per tier (or per tier / namespace series)."""
    figure = go.Figure()
    column = "tier" if "tier" in frame.columns else "series"
    names = TIER_ORDER if column == "tier" else sorted(frame[column].unique())
    for name in names:
        part = frame[frame[column] == name]
        if not part.empty:
            figure.add_trace(go.Scatter(x=part["minute"], y=part["hit ratio"], name=name, mode="lines+markers"))
    figure.update_layout(
        yaxis={"title": "hit ratio", "range": [0, 1.02], "tickformat": ".0%"},
        xaxis={"title": "minute (UTC)"},
        height=300,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        legend={"orientation": "h"},
    )
    return figure


def key_sample() -> KeySample:
    """Return a bounded SCAN sample of the keyspace (at most 10,000 keys)."""
    return cache_service().sample_keys()


def sample_caption(sample: KeySample) -> str:
    """Say how much of the keyspace the sample covered (on how many primaries) and that counts are extrapolated."""
    where = f" on {len(sample.nodes)} primaries" if len(sample.nodes) > 1 else ""
    if sample.complete:
        return f"All {sample.scanned:,} keys{where} were scanned: the counts are exact."
    return (
        f"A sample: {sample.scanned:,} of {sample.total_keys:,} keys{where} ({sample.share * 100:.1f} %) were "
        "scanned; the estimated counts are extrapolated from it" + (", node by node." if where else ".")
    )


def scan_frame(sample: KeySample) -> pd.DataFrame:
    """Return one row per primary: its keys, how many the sample scanned there, and whether that was all of them."""
    return pd.DataFrame(
        [{"node": n.node, "keys": n.keys, "scanned": n.scanned, "complete": n.complete} for n in sample.nodes],
        columns=["node", "keys", "scanned", "complete"],
    )


def sample_frame(sample: KeySample) -> pd.DataFrame:
    """Return one row per namespace: sampled, current and stale keys, the estimate and the TTL spread."""
    policy = {ns: TIER_POLICIES[ns.tier] for ns in Namespace}
    return pd.DataFrame(
        [
            {
                "namespace": ns.namespace,
                "tier": ns.tier,
                "keys (estimate)": ns.estimated_keys,
                "sampled": ns.sampled_keys,
                "current version": ns.current_keys,
                "stale (awaiting expiry)": ns.stale_keys,
                "TTL min": ttl_text(ns.ttl_min),
                "TTL median": ttl_text(ns.ttl_median),
                "TTL p90": ttl_text(ns.ttl_p90),
                "TTL max": ttl_text(ns.ttl_max),
                "tier range": (
                    f"{ttl_text(policy[Namespace(ns.namespace)].min_ttl.total_seconds())}–"
                    f"{ttl_text(policy[Namespace(ns.namespace)].max_ttl.total_seconds())}"
                ),
            }
            for ns in sample.namespaces
        ]
    )


def ttl_chart(sample: KeySample) -> go.Figure:
    """Draw the TTL spread per namespace (box plots, in hours)."""
    figure = go.Figure()
    for ns in sample.namespaces:
        if ns.ttls:
            figure.add_trace(go.Box(x=[t / 3600 for t in ns.ttls], name=ns.namespace, boxpoints=False))
    figure.update_layout(
        xaxis={"title": "TTL left (hours)"},
        height=240,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        showlegend=False,
    )
    return figure


def example_key() -> str:
    """Return an example key of this dashboard's prefix, for the lookup's placeholder."""
    return keys.user_profile(42).redis_key(cache_service().prefix, 0)


def lookup(key: str) -> KeyLookup:
    """Look one of our keys up (secrets masked)."""
    return cache_service().lookup_key(key)


def may_invalidate(actor: Actor) -> bool:
    """Tell whether the actor may invalidate cache namespaces and tiers."""
    return can(actor, Permission.INVALIDATE_CACHE)


TARGETS: dict[str, str] = {
    **{f"namespace:{ns.value}": f"Namespace {ns.value} (tier {ns.tier.value})" for ns in Namespace},
    **{
        f"tier:{tier.value}": f"Tier {tier.value} ({', '.join(n.value for n in namespaces_of(tier))})"
        for tier in CacheTier
    },
}
"""What the page offers to invalidate: value -> label."""


def invalidate(actor: Actor, target: str, reason: str) -> InvalidationResult:
    """Invalidate a namespace or a tier (``namespace:<name>`` or ``tier:<name>``), audited in core."""
    kind, _, name = target.partition(":")
    if kind == "tier":
        return cache_service().invalidate_tier(actor, TierInvalidation(tier=name, reason=reason))
    return cache_service().invalidate_namespace(actor, NamespaceInvalidation(namespace=name, reason=reason))
