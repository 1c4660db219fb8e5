"""A real unleash-server for the run, and the tests of starting and stopping it.

``unleash`` is the session fixture the flag tests share: one ``unleash-server`` from npm on a free
loopback port, against a fresh empty database on the test PostgreSQL server, seeded with the
registered flags, stopped (and its database dropped) at the end of the run. Modules that import it
share one server: the first one starts it, the last one to finish stops it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from core.config import Settings
from core.flags.models import UnleashEndpoint
from devstack.flags import seed_flags
from devstack.unleash import UnleashServer, healthy, missing_requirement, start_embedded
from tests.conftest import _create_database, _with_db, require_tool


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningUnleash:
    """The run's Unleash: its server (to stop and restart it), endpoint and database URL."""

    server: UnleashServer
    endpoint: UnleashEndpoint
    database_url: str

    def restart(self) -> None:
        """Starts the server again after a test stopped it."""
        self.endpoint = self.server.up()


_lock = threading.Lock()
_shared: dict[str, object] = {"users": 0, "running": None}


def require_unleash() -> None:
    """Skips (fails in CI) when node 18-20 or unleash-server 6 is missing, saying how to get them."""
    problem = missing_requirement()
    require_tool(problem is None, "unleash-server", problem or "")


@pytest.fixture(scope="session")
def unleash(
    servers: tuple[str, str], _databases: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningUnleash]:
    """A real Unleash for the run on a fresh database, seeded with the registered flags."""
    require_unleash()
    with _lock:
        running = _shared["running"]
        if running is None:
            name = _create_database(servers, _databases)
            database_url = _with_db(servers[0], name).replace("postgresql+psycopg://", "postgresql://")
            server = UnleashServer(tmp_path_factory.mktemp("unleash"), free_port(), database_url)
            endpoint = server.up()
            seed_flags(endpoint, database_url=database_url)
            running = RunningUnleash(server, endpoint, database_url)
            _shared["running"] = running
        _shared["users"] = int(str(_shared["users"])) + 1
    assert isinstance(running, RunningUnleash)
    try:
        yield running
    finally:
        with _lock:
            _shared["users"] = int(str(_shared["users"])) - 1
            if _shared["users"] == 0:
                running.server.down()
                _shared["running"] = None


def test_the_run_s_unleash_answers_on_loopback_with_its_tokens(unleash: RunningUnleash) -> None:
    status = unleash.server.status()

    assert status.running and status.pid is not None
    assert unleash.endpoint.api_url == f"http://127.0.0.1:{unleash.server.port}/api"
    assert healthy(unleash.endpoint.base_url)
    listening = {c.laddr.ip for c in psutil.Process(status.pid).net_connections() if c.status == "LISTEN"}
    assert listening == {"127.0.0.1"}
    assert set(unleash.endpoint.client_tokens) == {"development", "production"}


def test_a_second_up_is_a_no_op(unleash: RunningUnleash) -> None:
    pid = unleash.server.pid()

    again = unleash.server.up()

    assert again == unleash.endpoint
    assert unleash.server.pid() == pid


def test_a_stale_pid_file_never_makes_another_process_ours(unleash: RunningUnleash, tmp_path: Path) -> None:
    other = UnleashServer(tmp_path, free_port(), unleash.database_url)
    # The pid file names the run's real Unleash, but from another folder: it is not this server's.
    other.pidfile.write_text(f"{unleash.server.pid()}\n")

    assert other.pid() is None
    assert not other.down()
    assert unleash.server.status().running


def test_a_taken_port_is_refused(unleash: RunningUnleash, tmp_path: Path) -> None:
    other = UnleashServer(tmp_path, unleash.server.port, unleash.database_url)

    with pytest.raises(Exception, match="is taken by a server this stack did not start"):
        other.up(timeout=5)
    assert other.pid() is None


def test_without_node_the_embedded_unleash_says_how_to_get_it_and_raises_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))

    assert "apt-get install nodejs" in (missing_requirement() or "")
    note = start_embedded(
        Settings(state_dir=tmp_path, database_url=None, redis_url=None), "postgresql://x@127.0.0.1:9/x"
    )

    assert note.startswith("not started: node is not installed")
    assert "npm install -g unleash-server@6" in note
    assert not (tmp_path / "unleash" / "unleash.pid").exists()
