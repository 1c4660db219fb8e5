"""Looking at the cache: Redis's INFO figures and rates, our hit ratios, a bounded key sample, one key.

On a Redis Cluster the server-wide figures (INFO, DBSIZE) and the key sample (SCAN) cover every
primary: figures are summed (memory, clients, ops, counters, keys), the uptime is the youngest
node's, the fragmentation the worst node's, the memory level the fullest node's, and each primary's
own figures are kept beside the sums.
"""

from __future__ import annotations

import json
import logging
import re
import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from core.adapters.redis import Server, is_cluster, node_of, servers
from core.cache.keys import Namespace, info_samples_key, namespace_prefix
from core.cache.models import (
    KeyLookup,
    KeySample,
    NamespaceSample,
    NodeFigures,
    NodeScan,
    RedisFigures,
    RedisRates,
)
from core.cache.stats import CacheCounters, TierCounts
from core.cache.store import Cache
from core.domain.exceptions import InvalidInput, RedisUnavailable

log = logging.getLogger(__name__)

SAMPLE_LIMIT = 10_000
TTL_SAMPLE = 500
"""TTLs read per namespace from the key sample (about; evenly spaced)."""
PREVIEW_CHARS = 400
PEEK_ITEMS = 50
"""Fields of a hash one look reads: one HSCAN page, never the whole hash."""
LOOKUP_FAMILIES = ("cache", "cache-stats", "ratelimit")
"""The key families (after the prefix) a person may look into; sessions and the rest are never shown."""
INFO_SAMPLE_EVERY_SECONDS = 5.0
INFO_SAMPLES_KEPT = 1000


_SECRET_NAME = re.compile(r"pass(word)?|secret|token|api[_-]?key|auth|cookie|session|credential|private", re.I)
_SECRET_VALUES = [
    re.compile(r"\b(sk|pk|rk)[-_][A-Za-z0-9_-]{8,}"),
    re.compile(r"\bBearer\s+[A-Za-z0-9._~+/=-]{8,}", re.I),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
    re.compile(r"(?i)\b(password|secret|token|api[_-]?key)\s*[=:]\s*\S+"),
]
MASK = "•••"


def mask_secrets(value: Any) -> Any:
    """Return a copy of a decoded value with secret-looking fields and strings masked."""
    if isinstance(value, dict):
        return {k: MASK if _SECRET_NAME.search(str(k)) else mask_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    if isinstance(value, str):
        for pattern in _SECRET_VALUES:
            value = pattern.sub(MASK, value)
        return value
    return value


def _preview(raw: bytes | str) -> str:
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    try:
        shown = json.dumps(mask_secrets(json.loads(text)), default=str)
    except ValueError:
        shown = mask_secrets(text)
    return shown if len(shown) <= PREVIEW_CHARS else shown[:PREVIEW_CHARS] + "…"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _percentile(sorted_values: list[int], share: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(share * (len(sorted_values) - 1))))
    return float(sorted_values[index])


def _distinct(values: Iterable[str]) -> str:
    """Write one value, or every distinct one (nodes of a cluster mid-upgrade may differ)."""
    return ", ".join(dict.fromkeys(values))


def _node_figures(server: Server, info: dict[str, Any], keys: int) -> NodeFigures:
    return NodeFigures(
        node=server.name,
        used_memory=int(info.get("used_memory", 0)),
        maxmemory=int(info.get("maxmemory", 0)),
        connected_clients=int(info.get("connected_clients", 0)),
        ops_per_second=int(info.get("instantaneous_ops_per_sec", 0)),
        evicted_keys=int(info.get("evicted_keys", 0)),
        keys=keys,
        uptime_seconds=int(info.get("uptime_in_seconds", 0)),
    )


@dataclass
class _Scan:
    """One primary's SCAN while a sample is taken."""

    server: Server
    keys: int
    cursor: int = 0
    scanned: int = 0
    finished: bool = False
    """SCAN answered cursor 0: the node was walked to its end."""
    truncated: bool = False
    """A batch was cut short to keep the sample's bound."""

    @property
    def complete(self) -> bool:
        return self.finished and not self.truncated

    @property
    def active(self) -> bool:
        return not self.finished and not self.truncated

    @property
    def scale(self) -> float:
        """How many of the node's keys each scanned key stands for."""
        return 1.0 if self.complete or self.scanned == 0 else self.keys / self.scanned


class CacheInspector:
    """Cache figures for the Cache page: Redis's INFO, our hit ratios, a key sample and one key's preview."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self.client = cache.client
        self.prefix = cache.prefix
        self.counters: CacheCounters = cache.counters

    def is_up(self) -> bool:
        """Tell whether Redis answers a PING (every primary of a cluster)."""
        try:
            return all(server.client.ping() for server in servers(self.client))
        except redis.RedisError:
            return False

    def redis_figures(self) -> RedisFigures:
        """Return the INFO figures now (summed over a cluster's primaries); keep a sample for rates over a window."""
        try:
            answers = [(server, server.client.info(), int(server.client.dbsize())) for server in servers(self.client)]
        except redis.RedisError as exc:
            raise RedisUnavailable(f"Redis is down: {exc.__class__.__name__}.") from exc
        nodes = [_node_figures(server, info, keys) for server, info, keys in answers]
        infos = [info for _, info, _ in answers]

        def total(field: str) -> int:
            return sum(int(info.get(field, 0)) for info in infos)

        ratios = [float(info["mem_fragmentation_ratio"]) for info in infos if "mem_fragmentation_ratio" in info]
        figures = RedisFigures(
            sampled_at=datetime.now(UTC),
            server=str(infos[0].get("server_name", "redis")),
            version=_distinct(str(info.get("valkey_version") or info.get("redis_version", "?")) for info in infos),
            # The youngest node's uptime: a restart of any node resets its share of the summed counters.
            uptime_seconds=min(node.uptime_seconds for node in nodes),
            used_memory=total("used_memory"),
            # Unbounded as a whole when any node is.
            maxmemory=total("maxmemory") if all(node.maxmemory for node in nodes) else 0,
            eviction_policy=_distinct(str(info.get("maxmemory_policy", "?")) for info in infos),
            fragmentation_ratio=max(ratios) if ratios else None,
            connected_clients=total("connected_clients"),
            ops_per_second=total("instantaneous_ops_per_sec"),
            evicted_keys=total("evicted_keys"),
            expired_keys=total("expired_keys"),
            keyspace_hits=total("keyspace_hits"),
            keyspace_misses=total("keyspace_misses"),
            total_commands=total("total_commands_processed"),
            keys=sum(node.keys for node in nodes),
            cluster=is_cluster(self.client),
            nodes=nodes,
        )
        self._keep_sample(figures)
        return figures

    def _keep_sample(self, figures: RedisFigures) -> None:
        key = info_samples_key(self.prefix)
        sample = {
            "t": figures.sampled_at.timestamp(),
            "up": figures.uptime_seconds,
            "hits": figures.keyspace_hits,
            "misses": figures.keyspace_misses,
            "evicted": figures.evicted_keys,
            "expired": figures.expired_keys,
            "commands": figures.total_commands,
        }
        try:
            newest = self.client.lindex(key, 0)
            if newest is not None and sample["t"] - json.loads(newest)["t"] < INFO_SAMPLE_EVERY_SECONDS:
                return
            pipe = self.client.pipeline(transaction=False)
            pipe.lpush(key, json.dumps(sample))
            pipe.ltrim(key, 0, INFO_SAMPLES_KEPT - 1)
            pipe.expire(key, 3 * 3600)
            pipe.execute()
        except (redis.RedisError, ValueError, KeyError) as exc:
            log.info("INFO sample not kept: %s", exc.__class__.__name__)

    def redis_rates(self, now: RedisFigures, *, window_seconds: float) -> RedisRates | None:
        """Return rates between ``now`` and the kept sample nearest ``window_seconds`` ago; None without one."""
        try:
            raw = self.client.lrange(info_samples_key(self.prefix), 0, INFO_SAMPLES_KEPT - 1)
        except redis.RedisError:
            return None
        t_now = now.sampled_at.timestamp()
        best: dict[str, float] | None = None
        for item in raw:
            sample = json.loads(item)
            age = t_now - sample["t"]
            if age < 1 or sample["up"] > now.uptime_seconds:  # too fresh, or from before a restart
                continue
            if best is None or abs(age - window_seconds) < abs(t_now - best["t"] - window_seconds):
                best = sample
        if best is None:
            return None
        seconds = t_now - best["t"]
        hits = now.keyspace_hits - best["hits"]
        misses = now.keyspace_misses - best["misses"]
        return RedisRates(
            seconds=seconds,
            evictions_per_second=max(0, now.evicted_keys - best["evicted"]) / seconds,
            expirations_per_second=max(0, now.expired_keys - best["expired"]) / seconds,
            commands_per_second=max(0, now.total_commands - best["commands"]) / seconds,
            hit_ratio=hits / (hits + misses) if hits + misses > 0 else None,
        )

    def counts(self, minutes: int) -> list[TierCounts]:
        """Return our hits, misses and errors per tier and namespace over the last ``minutes`` minutes."""
        self.counters.flush()
        try:
            return self.counters.window(minutes)
        except redis.RedisError as exc:
            raise RedisUnavailable(f"Redis is down: {exc.__class__.__name__}.") from exc

    def counts_per_minute(self, minutes: int) -> list[tuple[int, TierCounts]]:
        """Return (epoch minute, counts) per minute, tier and namespace over the last ``minutes`` minutes."""
        self.counters.flush()
        try:
            return self.counters.per_minute(minutes)
        except redis.RedisError as exc:
            raise RedisUnavailable(f"Redis is down: {exc.__class__.__name__}.") from exc

    def sample_keys(self, *, limit: int = SAMPLE_LIMIT, scan_count: int = 1000) -> KeySample:
        """SCAN at most ``limit`` keys; count our cache keys and their TTLs per namespace, and extrapolate.

        On a cluster every primary is scanned, in turns, inside the one bound, and what was seen on a
        node is extrapolated by that node's DBSIZE (a namespace's keys all live on one node).
        """
        if not 1 <= limit <= SAMPLE_LIMIT:
            raise InvalidInput(f"A key sample holds 1 to {SAMPLE_LIMIT:,} keys.")
        started = time.perf_counter()
        root = f"{self.prefix}cache:{{".encode()
        by_tag = {ns.value.encode(): ns for ns in Namespace}
        seen: dict[Namespace, list[bytes]] = {ns: [] for ns in Namespace}
        try:
            scans = [_Scan(server, int(server.client.dbsize())) for server in servers(self.client)]
            per_node: dict[Namespace, list[int]] = {ns: [0] * len(scans) for ns in Namespace}
            versions = self.cache.current_versions()
            budget = limit
            while budget > 0 and any(scan.active for scan in scans):
                for index, scan in enumerate(scans):
                    if not scan.active or budget == 0:
                        continue
                    cursor, batch = scan.server.client.scan(cursor=scan.cursor, count=min(scan_count, budget))
                    if len(batch) > budget:  # SCAN may answer more than COUNT: keep the bound
                        batch, scan.truncated = batch[:budget], True
                    budget -= len(batch)
                    scan.scanned += len(batch)
                    scan.cursor = int(cursor)
                    scan.finished = scan.cursor == 0
                    for item in batch:
                        key = item if isinstance(item, bytes) else str(item).encode()
                        if not key.startswith(root) or key.endswith(b":version"):
                            continue
                        ns = by_tag.get(key[len(root) : key.find(b"}", len(root))])
                        if ns is not None:
                            seen[ns].append(key)
                            per_node[ns][index] += 1
            # TTLs of an even sample of each namespace's keys: the spread needs no more, and a
            # pipeline of 10,000 TTLs would cost the page most of its time.
            pipe = self.client.pipeline(transaction=False)
            ordered = [(ns, key) for ns, found in seen.items() for key in found[:: max(1, len(found) // TTL_SAMPLE)]]
            for _, key in ordered:
                pipe.ttl(key)
            ttls = pipe.execute() if ordered else []
        except redis.RedisError as exc:
            raise RedisUnavailable(f"Redis is down: {exc.__class__.__name__}.") from exc
        per_ns: dict[Namespace, list[int]] = {ns: [] for ns in Namespace}
        for (ns, _), ttl in zip(ordered, ttls, strict=True):
            if int(ttl) >= 0:
                per_ns[ns].append(int(ttl))
        namespaces: list[NamespaceSample] = []
        for ns in Namespace:
            found = seen[ns]
            current = f"{namespace_prefix(self.prefix, ns)}v{versions[ns]}:".encode()
            current_keys = sum(1 for key in found if key.startswith(current))
            spread = sorted(per_ns[ns])
            namespaces.append(
                NamespaceSample(
                    namespace=ns.value,
                    tier=ns.tier.value,
                    sampled_keys=len(found),
                    current_keys=current_keys,
                    stale_keys=len(found) - current_keys,
                    estimated_keys=round(
                        sum(count * scan.scale for count, scan in zip(per_node[ns], scans, strict=True))
                    ),
                    ttl_min=spread[0] if spread else None,
                    ttl_median=statistics.median(spread) if spread else None,
                    ttl_p90=_percentile(spread, 0.9) if spread else None,
                    ttl_max=spread[-1] if spread else None,
                    ttls=spread,
                )
            )
        return KeySample(
            scanned=sum(scan.scanned for scan in scans),
            total_keys=sum(scan.keys for scan in scans),
            complete=all(scan.complete for scan in scans),
            namespaces=namespaces,
            seconds=time.perf_counter() - started,
            nodes=[
                NodeScan(node=scan.server.name, keys=scan.keys, scanned=scan.scanned, complete=scan.complete)
                for scan in scans
            ],
        )

    def check_lookup(self, key: str) -> None:
        """Refuse a key outside the families a person may look into (sessions never): ``InvalidInput``."""
        if not key:
            raise InvalidInput("Enter a key to look up.")
        if not key.startswith(self.prefix):
            raise InvalidInput(f"Only this dashboard's keys can be looked up: they start with {self.prefix!r}.")
        family = key.removeprefix(self.prefix).split(":", 1)[0]
        if family not in LOOKUP_FAMILIES:
            shown = ", ".join(f"{self.prefix}{name}:" for name in LOOKUP_FAMILIES)
            raise InvalidInput(
                f"Only cache, statistics and rate-limit keys can be looked up (they start with {shown})."
            )

    def read_key(self, key: str) -> KeyLookup:
        """Return one of our keys' type, TTL, size and a preview of its value with secrets masked (unaudited).

        One bounded read per look: a string's first bytes, one HSCAN page of a hash, the first
        items of a list or a sorted set, a few random members of a set.
        """
        key = key.strip()
        self.check_lookup(key)
        try:
            node = node_of(self.client, key)
            kind = _text(self.client.type(key))
            if kind == "none":
                return KeyLookup(key=key, exists=False, node=node)
            ttl = int(self.client.ttl(key))
            size = self.client.memory_usage(key)
            length, preview = self._peek(key, kind)
        except redis.RedisError as exc:
            raise RedisUnavailable(f"Redis is down: {exc.__class__.__name__}.") from exc
        return KeyLookup(
            key=key,
            exists=True,
            node=node,
            type=kind,
            ttl_seconds=ttl if ttl >= 0 else None,
            size_bytes=int(size) if size is not None else None,
            length=length,
            preview=preview,
        )

    def _peek(self, key: str, kind: str) -> tuple[int | None, str]:
        client = self.client
        if kind == "string":
            raw = client.getrange(key, 0, 4 * PREVIEW_CHARS)
            return int(client.strlen(key)), _preview(raw)
        if kind == "hash":
            page: Any = client.hscan(key, 0, count=PEEK_ITEMS)
            fields: dict[Any, Any] = page[1]
            shown = {_text(k): _text(v) for k, v in list(fields.items())[:PEEK_ITEMS]}
            return int(client.hlen(key)), _preview(json.dumps(shown))
        if kind == "list":
            return int(client.llen(key)), _preview(json.dumps([_text(v) for v in client.lrange(key, 0, 19)]))
        if kind == "set":
            members: Any = client.srandmember(key, 20)
            return int(client.scard(key)), _preview(json.dumps([_text(v) for v in members]))
        if kind == "zset":
            items: Any = client.zrange(key, 0, 19, withscores=True)
            return int(client.zcard(key)), _preview(json.dumps([[_text(m), s] for m, s in items]))
        if kind == "stream":
            return int(client.xlen(key)), "(a stream: read it with XRANGE)"
        return None, f"({kind})"
