"""The cluster client's failure rules, against local sockets: nothing leaks the URL, nothing queues."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from core.adapters import redis as cluster
from core.adapters.redis import ClusterUnavailable, make_redis
from core.health.checks import HealthStatus, check_redis


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def silent_node() -> Iterator[tuple[int, list[socket.socket]]]:
    """Open a listener that accepts connections and never answers (a cluster node that hangs)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1]), accepted
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        server.close()


def test_the_password_in_the_url_never_reaches_a_message() -> None:
    port = _closed_port()
    client = make_redis(f"redis://:s3cret-pw@127.0.0.1:{port}/0", cluster=True)
    health = check_redis(client)
    assert health.status is HealthStatus.FAIL
    assert "s3cret-pw" not in health.detail
    assert f"127.0.0.1:{port}" in health.detail


def test_after_a_failed_read_commands_fail_at_once_then_try_again(
    silent_node: tuple[int, list[socket.socket]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, accepted = silent_node
    now = [100.0]
    monkeypatch.setattr(cluster, "_clock", lambda: now[0])
    client = make_redis(f"redis://127.0.0.1:{port}/0", cluster=True)  # the first read fails while built
    tried = len(accepted)
    assert tried >= 1
    with pytest.raises(ClusterUnavailable, match="did not answer"):
        client.get("a")
    assert len(accepted) == tried, "within the retry interval the cluster is not asked again"
    now[0] += cluster.CONNECT_RETRY_SECONDS
    with pytest.raises(ClusterUnavailable):
        client.get("a")
    assert len(accepted) > tried, "after the interval a command reads the topology again"
