"""What the Cache page reads: Redis's figures, rates, a key sample, one key, an invalidation's result."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

MEMORY_WARNING = 0.80
MEMORY_ALARM = 0.95


class MemoryLevel(StrEnum):
    OK = "ok"
    WARNING = "warning"
    ALARM = "alarm"
    UNBOUNDED = "unbounded"


def _memory_level(used: int, maxmemory: int) -> MemoryLevel:
    if not maxmemory:
        return MemoryLevel.UNBOUNDED
    share = used / maxmemory
    if share >= MEMORY_ALARM:
        return MemoryLevel.ALARM
    if share >= MEMORY_WARNING:
        return MemoryLevel.WARNING
    return MemoryLevel.OK


_LEVEL_ORDER = [MemoryLevel.UNBOUNDED, MemoryLevel.OK, MemoryLevel.WARNING, MemoryLevel.ALARM]


class NodeFigures(BaseModel):
    """One primary's own INFO figures (a single server is a cluster of one)."""

    model_config = ConfigDict(frozen=True)

    node: str
    used_memory: int
    maxmemory: int
    connected_clients: int
    ops_per_second: int
    evicted_keys: int
    keys: int
    uptime_seconds: int

    @property
    def memory_share(self) -> float | None:
        """Used memory per maxmemory; None when no maxmemory is set."""
        return self.used_memory / self.maxmemory if self.maxmemory else None

    @property
    def memory_level(self) -> MemoryLevel:
        """The node's level: OK below 80 % of its maxmemory, a warning from 80 %, an alarm from 95 %."""
        return _memory_level(self.used_memory, self.maxmemory)


class RedisFigures(BaseModel):
    """Figures from ``INFO`` (counters are cumulative since the server started), summed over a cluster's primaries."""

    model_config = ConfigDict(frozen=True)

    sampled_at: datetime
    server: str
    version: str
    uptime_seconds: int
    used_memory: int
    maxmemory: int
    eviction_policy: str
    fragmentation_ratio: float | None
    connected_clients: int
    ops_per_second: int
    evicted_keys: int
    expired_keys: int
    keyspace_hits: int
    keyspace_misses: int
    total_commands: int
    keys: int
    cluster: bool = False
    nodes: list[NodeFigures] = Field(default_factory=list)
    """Each primary's own figures, by node name (one entry for a single server)."""

    @property
    def memory_share(self) -> float | None:
        """Used memory per maxmemory; None when no maxmemory is set."""
        return self.used_memory / self.maxmemory if self.maxmemory else None

    @property
    def memory_level(self) -> MemoryLevel:
        """OK below 80 % of maxmemory, a warning from 80 %, an alarm from 95 %: of the fullest node on a cluster.

        Each node evicts on its own maxmemory, so one full node is an alarm however empty the others are.
        """
        if not self.nodes:
            return _memory_level(self.used_memory, self.maxmemory)
        return max((node.memory_level for node in self.nodes), key=_LEVEL_ORDER.index)


class RedisRates(BaseModel):
    """Per-second rates and the keyspace hit ratio between two INFO samples."""

    model_config = ConfigDict(frozen=True)

    seconds: float
    evictions_per_second: float
    expirations_per_second: float
    commands_per_second: float
    hit_ratio: float | None


class NamespaceSample(BaseModel):
    """What a bounded SCAN saw of one namespace, and the whole namespace extrapolated from it."""

    model_config = ConfigDict(frozen=True)

    namespace: str
    tier: str
    sampled_keys: int
    current_keys: int
    stale_keys: int
    estimated_keys: int
    ttl_min: int | None
    ttl_median: float | None
    ttl_p90: float | None
    ttl_max: int | None
    ttls: list[int]


class NodeScan(BaseModel):
    """How far the sample's SCAN went on one primary."""

    model_config = ConfigDict(frozen=True)

    node: str
    keys: int
    scanned: int
    complete: bool


class KeySample(BaseModel):
    """A bounded SCAN of the keyspace (of every primary on a cluster): how far it went and what it saw per namespace."""

    model_config = ConfigDict(frozen=True)

    scanned: int
    total_keys: int
    complete: bool
    namespaces: list[NamespaceSample]
    seconds: float
    nodes: list[NodeScan] = Field(default_factory=list)

    @property
    def share(self) -> float:
        """The share of the keyspace the sample covered."""
        return 1.0 if self.complete or not self.total_keys else min(1.0, self.scanned / self.total_keys)


class KeyLookup(BaseModel):
    """One key: its type, TTL, size and a preview with secrets masked."""

    model_config = ConfigDict(frozen=True)

    key: str
    exists: bool
    node: str | None = None
    """The primary holding the key on a cluster (host:port); None on a single server."""
    type: str | None = None
    ttl_seconds: int | None = None
    size_bytes: int | None = None
    length: int | None = None
    preview: str | None = None


class InvalidationResult(BaseModel):
    """The namespace versions an invalidation moved to."""

    model_config = ConfigDict(frozen=True)

    target: str
    versions: dict[str, int]
    dropped_local_entries: int
