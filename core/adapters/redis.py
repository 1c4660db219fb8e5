"""The Redis client every Redis user in ``core`` talks through (``make_redis``): one server, or a Redis Cluster.

``RedisClient`` is either a ``redis.Redis`` (one server: the embedded Valkey, a managed Redis) or a
``ClusterClient`` (``KROWOC_REDIS_CLUSTER=true``). Key-based commands, pipelines and Lua scripts read
the same on both, as long as every multi-key operation stays on one hash slot (see
``core.cache.keys``). What differs is the server-wide view: INFO, DBSIZE and SCAN answer for one
server only, so code that needs the whole keyspace asks ``servers(client)`` for one plain client per
primary and a single server is the cluster-of-one case.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, overload

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import ClusterPipeline, ClusterPubSub, RedisCluster
from redis.connection import parse_url
from redis.exceptions import ClusterError, RedisClusterException
from redis.retry import Retry

log = logging.getLogger(__name__)

CONNECT_RETRY_SECONDS = 1.0
"""After the cluster's topology could not be read, commands fail at once for this long before one tries again."""
_clock = time.monotonic

CLUSTER_RETRIES = 2
"""Retries of a command after a node failed (the topology is re-read between them): enough for a
failover, few enough that a dead cluster does not hold every read through redis-py's default ten."""


def _without_url(text: str, url: str) -> str:
    """Remove a URL (and so any password in it) from an error's text."""
    return text.replace(url, "<KROWOC_REDIS_URL>")


class ClusterUnavailable(ClusterError):
    """The cluster could not be reached or could not route a command (a ``redis.RedisError``, so callers fail open)."""


class ClusterClient(RedisCluster):
    """A Redis Cluster client that fails the way a single-server client does.

    redis-py's ``RedisCluster`` reads the cluster's topology while it is built and raises when no
    node answers, and some of its errors (no node reachable, a slot not covered) are not
    ``redis.RedisError``. Either would take a page down where a dead single server only costs
    cache misses. This client is built even while the cluster is down, reads the topology on first
    use (and again on each use until it gets it), and raises ``ClusterUnavailable`` for those errors.
    """

    def __init__(self, url: str, **options: Any) -> None:
        parsed: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
        if "path" in parsed:
            raise ValueError("A Redis Cluster is reached over TCP: KROWOC_REDIS_URL must be redis:// or rediss://.")
        if parsed.get("db", 0) != 0:
            raise ValueError("A Redis Cluster has database 0 only: end KROWOC_REDIS_URL with /0 or no database.")
        self._cluster_url = url
        # What messages name: the node's address, never the URL (it may carry a password).
        self._cluster_where = f"{parsed.get('host', 'localhost')}:{parsed.get('port', 6379)}"
        self._cluster_options = options
        self._cluster_lock = threading.Lock()
        self._cluster_thread = threading.local()  # ``connecting``: this thread is inside ``RedisCluster.__init__``
        self._cluster_failed: tuple[float, str] | None = None  # when the last topology read failed, and why
        try:
            self._connect()
        except ClusterUnavailable as exc:
            log.warning("%s; commands try again every %.0f s until it answers", exc, CONNECT_RETRY_SECONDS)

    @property
    def connected(self) -> bool:
        """Tell whether the topology has been read (the client is a working ``RedisCluster``)."""
        return "nodes_manager" in self.__dict__

    def _raise_if_resting(self) -> None:
        # Within CONNECT_RETRY_SECONDS of a failed topology read, fail at once: threads queueing on
        # the lock behind a cluster that hangs would otherwise each wait out their own timeout.
        failed = self._cluster_failed
        if failed is not None and _clock() - failed[0] < CONNECT_RETRY_SECONDS:
            raise ClusterUnavailable(failed[1])

    def _connect(self) -> None:
        self._raise_if_resting()
        with self._cluster_lock:
            if self.connected:
                return
            self._raise_if_resting()
            self._cluster_thread.connecting = True
            try:
                super().__init__(url=self._cluster_url, **self._cluster_options)
            except (RedisClusterException, redis.RedisError) as exc:
                self.__dict__.pop("nodes_manager", None)
                why = _without_url(str(exc), self._cluster_url)
                message = f"Redis Cluster at {self._cluster_where} did not answer: {why}"
                self._cluster_failed = (_clock(), message)
                raise ClusterUnavailable(message) from exc
            finally:
                self._cluster_thread.connecting = False
            self._cluster_failed = None

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes ``RedisCluster.__init__`` has not set yet: read the topology, then look again.
        if name.startswith("__") or name.startswith("_cluster_"):
            raise AttributeError(name)
        if getattr(self.__dict__.get("_cluster_thread"), "connecting", False):
            raise AttributeError(name)  # read by ``RedisCluster.__init__`` before it sets it: let it see that
        self._connect()
        return object.__getattribute__(self, name)

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        """Run a command on the node(s) it belongs to; cluster-routing failures raise ``ClusterUnavailable``."""
        try:
            return super().execute_command(*args, **kwargs)  # type: ignore[no-untyped-call]
        except RedisClusterException as exc:
            raise ClusterUnavailable(str(exc)) from exc

    def pipeline(self, transaction: bool | None = None, shard_hint: Any = None) -> ClusterPipeline:
        """Return a pipeline whose failures, like the client's, are ``redis.RedisError``."""
        pipe: ClusterPipeline = super().pipeline(transaction, shard_hint)  # type: ignore[no-untyped-call]
        # Same object, one overridden method: redis-py builds the pipeline with arguments that vary between versions.
        pipe.__class__ = _ClusterPipeline
        return pipe

    def pubsub(self, node: Any = None, host: Any = None, port: Any = None, **kwargs: Any) -> ClusterPubSub:
        """Return a Pub/Sub connection (to the node of the first channel unless one is named)."""
        try:
            pubsub: ClusterPubSub = super().pubsub(node=node, host=host, port=port, **kwargs)  # type: ignore[no-untyped-call]
        except RedisClusterException as exc:
            raise ClusterUnavailable(str(exc)) from exc
        return pubsub

    def close(self) -> None:
        """Release every node's connections (nothing to release before the topology was read)."""
        if self.connected:
            super().close()


class _ClusterPipeline(ClusterPipeline):
    """A cluster pipeline whose routing failures are ``ClusterUnavailable`` (a ``redis.RedisError``)."""

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        try:
            return super().execute(raise_on_error)
        except RedisClusterException as exc:
            raise ClusterUnavailable(str(exc)) from exc


RedisClient: TypeAlias = redis.Redis | ClusterClient
"""What ``make_redis`` builds: one server, or a cluster."""

REDIS_TIMEOUT_SECONDS = 0.5


@overload
def make_redis(url: str, *, cluster: Literal[False] = False) -> redis.Redis: ...


@overload
def make_redis(url: str, *, cluster: Literal[True]) -> ClusterClient: ...


@overload
def make_redis(url: str, *, cluster: bool) -> RedisClient: ...


def make_redis(url: str, *, cluster: bool = False) -> RedisClient:
    """Build a Redis client with short timeouts so a dead Redis never stalls a page.

    With ``cluster``, ``url`` names any node of a Redis Cluster and the client finds the others; it
    is built even while the cluster is down and fails like a single server (``redis.RedisError``).
    """
    if cluster:
        return cluster_client(url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS)
    return redis.Redis.from_url(
        url,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        health_check_interval=30,
        decode_responses=False,
    )


def cluster_client(url: str, *, socket_timeout: float, socket_connect_timeout: float) -> ClusterClient:
    """Build a cluster client from any node's URL, with few retries so a dead cluster fails fast."""
    return ClusterClient(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_connect_timeout,
        decode_responses=False,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.25), retries=CLUSTER_RETRIES),
    )


@dataclass(frozen=True)
class Server:
    """One primary of the keyspace and a plain client to it alone (for INFO, DBSIZE and SCAN)."""

    name: str
    client: redis.Redis


def servers(client: RedisClient) -> list[Server]:
    """Return every primary holding part of the keyspace: a cluster's primaries, or the one server.

    Raises ``redis.RedisError`` when the cluster's topology cannot be read.
    """
    if isinstance(client, RedisCluster):
        primaries = sorted(client.get_primaries(), key=lambda node: node.name)  # type: ignore[no-untyped-call]
        if not primaries:
            raise ClusterUnavailable("The Redis Cluster has no primary the client knows of.")
        return [Server(node.name, client.get_redis_connection(node)) for node in primaries]
    options = client.connection_pool.connection_kwargs
    name = options.get("path") or f"{options.get('host', 'localhost')}:{options.get('port', 6379)}"
    return [Server(str(name), client)]


def is_cluster(client: RedisClient) -> bool:
    """Tell whether the client talks to a Redis Cluster."""
    return isinstance(client, RedisCluster)


def node_of(client: RedisClient, key: str) -> str | None:
    """Return the name (host:port) of the primary that holds a key on a cluster; None on a single server."""
    if not isinstance(client, RedisCluster):
        return None
    try:
        return str(client.get_node_from_key(key).name)  # type: ignore[no-untyped-call]
    except RedisClusterException as exc:
        raise ClusterUnavailable(str(exc)) from exc
