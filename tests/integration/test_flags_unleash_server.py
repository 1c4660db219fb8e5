"""The run's real unleash-server (the ``unleash`` fixture of ``tests/conftest.py``): starting and stopping it."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from core.config import Settings
from devstack.unleash import UnleashServer, healthy, missing_requirement, start_embedded
from tests.support.network import free_port
from tests.support.unleash import RunningUnleash

# Every test of the run's Unleash runs in one worker, so the run starts one unleash-server.
pytestmark = pytest.mark.xdist_group("unleash")


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
