"""The Cache page: Redis figures, our tiers' hit ratios, the key sample, lookups and invalidation.

Redis is the one part this page reads: with Redis down the page says so in place of each panel
(the other pages keep working from PostgreSQL, the cache fails open).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from core.cache import keys
from core.cache.keys import TIER_POLICIES, CacheTier, Namespace, namespaces_of
from core.cache.models import (
    MEMORY_ALARM,
    MEMORY_WARNING,
    InvalidationResult,
    KeyLookup,
    KeySample,
    MemoryLevel,
    RedisFigures,
    RedisRates,
)
from core.cache.service import CacheService, NamespaceInvalidation, TierInvalidation
from core.cache.stats import MEMORY_LAYER, TierCounts
from core.domain.exceptions import RedisUnavailable
from core.domain.models import Actor
from core.domain.rbac import Permission, can
from dashboard import formats, widgets
from dashboard.services import services

REDIS_DOWN = "Redis is down"
WINDOWS: dict[str, int] = {"5 min": 5, "1 h": 60}
"""Hit-ratio windows offered on the page, in minutes."""
DEFAULT_WINDOW = "5 min"
TIER_ORDER = [MEMORY_LAYER, *(tier.value for tier in CacheTier)]
RATIO_BY = {"tier": "tier", "series": "tier and namespace"}
"""What the hit ratio over time is drawn per: a label for each."""

TARGETS: dict[str, str] = {
    **{f"namespace:{ns.value}": f"Namespace {ns.value} (tier {ns.tier.value})" for ns in Namespace},
    **{
        f"tier:{tier.value}": f"Tier {tier.value} ({', '.join(n.value for n in namespaces_of(tier))})"
        for tier in CacheTier
    },
}
"""What the page offers to invalidate: value -> label."""


def cache_service() -> CacheService:
    """Return the process's cache service."""
    return services().cache_admin


# -- Redis ----------------------------------------------------------------------------------------


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


def down_message(state: RedisState) -> str:
    """Say that Redis is down, why, and that the other pages keep working."""
    return (
        f"{REDIS_DOWN}: {state.problem} Every other page keeps working from PostgreSQL "
        "(the cache fails open); this page comes back when Redis answers."
    )


def memory_text(figures: RedisFigures) -> str:
    """Write used memory against maxmemory: '412.0 MiB of 1.0 GiB (40.2 %)'."""
    used = formats.size(figures.used_memory)
    if not figures.maxmemory:
        return f"{used} (no maxmemory)"
    return f"{used} of {formats.size(figures.maxmemory)} ({figures.memory_share * 100:.1f} %)"  # type: ignore[operator]


def memory_notice(figures: RedisFigures) -> str | None:
    """Say when memory is at the warning or alarm share of maxmemory (naming the primaries of a cluster that are)."""
    level = figures.memory_level
    if level not in (MemoryLevel.WARNING, MemoryLevel.ALARM):
        return None
    if level is MemoryLevel.ALARM:
        share, after = f"{MEMORY_ALARM * 100:.0f} %", ": keys are being evicted."
    else:
        share, after = f"{MEMORY_WARNING * 100:.0f} %", "."
    if figures.cluster:
        nodes = ", ".join(node.node for node in figures.nodes if node.memory_level is level)
        return f"Memory of {nodes} is at {share} of its maxmemory or more{after}"
    return f"Memory is at {share} of maxmemory or more{after}"


def fragmentation_text(figures: RedisFigures) -> str:
    """Write the memory fragmentation ratio, or a dash when Redis does not report it."""
    ratio = figures.fragmentation_ratio
    return formats.NOT_AVAILABLE if ratio is None else f"{ratio:.2f}"


def rates_caption(rates: RedisRates | None) -> str:
    """Say over how long the rates were measured, or that they appear from the next refresh."""
    if rates is None:
        return "Rates appear from the next refresh on (they are deltas between two INFO samples)."
    return f"Rates over the last {rates.seconds:,.0f} s, from deltas of INFO's cumulative counters."


def per_second_text(value: float | None) -> str:
    """Write a rate per second to two decimals, or a dash when there is none yet."""
    return formats.NOT_AVAILABLE if value is None else f"{value:,.2f}"


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
                "memory": formats.size(node.used_memory),
                "maxmemory": formats.size(node.maxmemory) if node.maxmemory else "none",
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


# -- our cache tiers ------------------------------------------------------------------------------

COUNT_COLUMNS = ["tier", "namespace", "hits", "misses", "errors", "hit ratio"]


def counts_frame(minutes: int) -> pd.DataFrame:
    """Return hits, misses, errors and hit ratio per tier and namespace over the last ``minutes`` minutes."""
    frame = pd.DataFrame([_count_row(c) for c in cache_service().counts(minutes)], columns=COUNT_COLUMNS)
    if frame.empty:
        return frame
    frame["order"] = frame["tier"].map({t: i for i, t in enumerate(TIER_ORDER)}).fillna(len(TIER_ORDER))
    return frame.sort_values(["order", "namespace"]).drop(columns="order").reset_index(drop=True)


def tier_totals(frame: pd.DataFrame) -> pd.DataFrame:
    """Sum a counts frame per tier, with each tier's hit ratio."""
    columns = ["tier", "hits", "misses", "errors", "hit ratio"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    totals = frame.groupby("tier", sort=False)[["hits", "misses", "errors"]].sum().reset_index()
    return pd.DataFrame([_count_row(c) for c in _tallies(totals, "tier")], columns=COUNT_COLUMNS)[columns]


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
    frame["hit ratio"] = [c.hit_ratio for c in _tallies(frame, by)]
    return frame


def _count_row(counts: TierCounts) -> dict[str, object]:
    return {
        "tier": counts.tier,
        "namespace": counts.namespace,
        "hits": counts.hits,
        "misses": counts.misses,
        "errors": counts.errors,
        "hit ratio": counts.hit_ratio,
    }


def _tallies(frame: pd.DataFrame, label: str) -> list[TierCounts]:
    # Summed counts back as core's TierCounts, so the hit ratio is core's rule, not a second copy.
    errors = frame["errors"] if "errors" in frame.columns else [0] * len(frame)
    return [
        TierCounts(tier=str(name), namespace="", hits=int(hits), misses=int(misses), errors=int(failed))
        for name, hits, misses, failed in zip(frame[label], frame["hits"], frame["misses"], errors, strict=True)
    ]


# -- the key sample and lookups -------------------------------------------------------------------


def key_sample() -> KeySample | None:
    """Return a bounded SCAN sample of the keyspace (at most 10,000 keys), or None while Redis is down."""
    try:
        return cache_service().sample_keys()
    except RedisUnavailable:
        # Only this panel needs the keyspace: the page says there is no sample and shows the rest.
        return None


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
                "TTL min": formats.ttl(ns.ttl_min),
                "TTL median": formats.ttl(ns.ttl_median),
                "TTL p90": formats.ttl(ns.ttl_p90),
                "TTL max": formats.ttl(ns.ttl_max),
                "tier range": (
                    f"{formats.ttl(policy[Namespace(ns.namespace)].min_ttl.total_seconds())}–"
                    f"{formats.ttl(policy[Namespace(ns.namespace)].max_ttl.total_seconds())}"
                ),
            }
            for ns in sample.namespaces
        ]
    )


def has_ttls(sample: KeySample) -> bool:
    """Tell whether any sampled key has a TTL, so there is a spread to draw."""
    return any(ns.ttls for ns in sample.namespaces)


def example_key() -> str:
    """Return an example key of this dashboard's prefix, for the lookup's placeholder."""
    return keys.user_profile(42).redis_key(cache_service().prefix, 0)


def may_look_up(actor: Actor) -> bool:
    """Tell whether the actor may look keys up (operators and admins)."""
    return can(actor, Permission.INSPECT_CACHE_KEYS)


def lookup(actor: Actor, key: str) -> KeyLookup:
    """Look one of our keys up (permission-checked and audited in core, secrets masked)."""
    return cache_service().lookup_key(actor, key)


def lookup_summary(found: KeyLookup) -> dict[str, object]:
    """Return what the page shows of a key that exists: its node, type, TTL, size, length and masked preview."""
    return {
        "key": found.key,
        **({"node": found.node} if found.node else {}),
        "type": found.type,
        "ttl": formats.ttl(found.ttl_seconds) if found.ttl_seconds is not None else "no expiry",
        "size": formats.size(found.size_bytes or 0),
        "length": found.length,
        "preview (secrets masked)": found.preview,
    }


# -- invalidation ---------------------------------------------------------------------------------


def may_invalidate(actor: Actor) -> bool:
    """Tell whether the actor may invalidate cache namespaces and tiers."""
    return can(actor, Permission.INVALIDATE_CACHE)


def invalidate(actor: Actor, target: str, reason: str) -> InvalidationResult:
    """Invalidate a namespace or a tier (``namespace:<name>`` or ``tier:<name>``), audited in core."""
    kind, _, name = target.partition(":")
    if kind == "tier":
        return cache_service().invalidate_tier(
            actor, TierInvalidation.of(tier=name, reason=widgets.audit_reason(reason))
        )
    return cache_service().invalidate_namespace(
        actor, NamespaceInvalidation.of(namespace=name, reason=widgets.audit_reason(reason))
    )


def invalidated_message(result: InvalidationResult) -> str:
    """Say what was invalidated and which versions its namespaces moved to."""
    moved = ", ".join(f"{name} → v{version}" for name, version in result.versions.items())
    return f"Invalidated {result.target}: {moved}. Recorded in the audit log."
