"""The run's real unleash-server (the ``unleash`` fixture of ``tests/conftest.py``): its Node, start and stop."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from core.adapters.db import libpq_url
from core.config import Settings, get_settings
from core.flags.models import FlagCatalog
from core.flags.registry import REGISTRY
from core.flags.unleash_admin import UnleashAdmin, token_environment
from devstack.node import MIN_MAJOR, PACKAGE_DIR, NodePackages, wheel_root
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


def test_the_run_s_unleash_runs_the_pinned_server_from_the_lockfile_on_the_venv_s_node(unleash: RunningUnleash) -> None:
    settings = get_settings()
    pid = unleash.server.pid()
    assert pid is not None
    process = psutil.Process(pid)
    wheel = wheel_root()
    assert wheel is not None

    node, script = process.cmdline()[:2]
    assert Path(process.exe()).resolve() == (wheel / "bin" / "node").resolve()
    assert Path(node).resolve() == (wheel / "bin" / "node").resolve()
    assert (
        Path(script).resolve() == (settings.node_packages_dir / "node_modules/unleash-server/dist/server.js").resolve()
    )
    assert "/usr/lib/node_modules" not in " ".join(process.cmdline())
    pinned = json.loads((PACKAGE_DIR / "package.json").read_text())["dependencies"]
    for package in ("unleash-server", "oidc-provider"):
        installed = json.loads((settings.node_packages_dir / "node_modules" / package / "package.json").read_text())
        assert installed["version"] == pinned[package]
    lock = (PACKAGE_DIR / "package-lock.json").read_bytes()
    assert (settings.node_packages_dir / "package-lock.json").read_bytes() == lock


def test_a_second_install_is_a_no_op(unleash: RunningUnleash) -> None:
    packages = NodePackages(get_settings())
    modified = packages.modules.stat().st_mtime_ns

    runtime = packages.ensure()

    assert packages.installed(runtime)
    assert packages.modules.stat().st_mtime_ns == modified


def test_with_no_node_on_path_unleash_still_starts_on_the_venv_s_node(
    unleash: RunningUnleash, make_database: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert missing_requirement() is None
    server = UnleashServer(tmp_path / "unleash", free_port(), libpq_url(make_database(empty=True)))
    try:
        endpoint = server.up()
        pid = server.pid()

        assert pid is not None and healthy(endpoint.base_url)
        wheel = wheel_root()
        assert wheel is not None
        assert Path(psutil.Process(pid).exe()).resolve() == (wheel / "bin" / "node").resolve()
    finally:
        server.down()
    assert server.pid() is None


def test_a_node_setting_that_names_no_node_says_so_and_raises_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-node"
    settings = Settings(state_dir=tmp_path, database_url=None, redis_url=None, node_binary=missing)

    problem = missing_requirement(settings)
    note = start_embedded(settings, "postgresql://x@127.0.0.1:9/x")

    assert problem is not None and f"KROWOC_NODE_BINARY names {missing}" in problem
    assert note.startswith("not started: KROWOC_NODE_BINARY names")
    assert not (tmp_path / "unleash" / "unleash.pid").exists()


def test_an_old_node_is_refused_with_the_version_it_needs(tmp_path: Path) -> None:
    old = tmp_path / "node"
    old.write_text("#!/bin/sh\necho v20.11.1\n")
    old.chmod(0o755)

    problem = missing_requirement(Settings(node_binary=old))

    assert problem is not None and "Node 20.11" in problem and f"Node {MIN_MAJOR} or newer" in problem


def test_without_backend_tokens_the_catalog_reads_the_same_states_from_the_playground(
    unleash: RunningUnleash,
) -> None:
    """Unleash 7+ refuses admin tokens on the client API: an admin-only adapter reads the playground instead."""
    endpoint = unleash.endpoint
    with_tokens = UnleashAdmin(endpoint.api_url, endpoint.admin_token, client_tokens=endpoint.client_tokens)
    admin_only = UnleashAdmin(endpoint.api_url, endpoint.admin_token)
    try:
        [by_client_api, by_playground] = [admin.catalog() for admin in (with_tokens, admin_only)]
        events_before = admin_only.recent_changes(limit=1)
        admin_only.catalog()
        events_after = admin_only.recent_changes(limit=1)
    finally:
        with_tokens.close()
        admin_only.close()

    assert by_client_api.environments == by_playground.environments == ["development", "production"]
    assert set(REGISTRY) <= {flag.name for flag in by_playground.flags}

    def states(catalog: FlagCatalog) -> dict[tuple[str, str], tuple[bool, list[tuple[str, dict[str, str]]]]]:
        return {
            (flag.name, env): (state.enabled, [(s.name, s.parameters) for s in state.strategies])
            for flag in catalog.flags
            for env, state in flag.environments.items()
        }

    assert states(by_playground) == states(by_client_api)
    assert len(states(by_playground)) >= 2 * len(REGISTRY)
    assert [(f.name, f.type, f.stale, f.description) for f in by_playground.flags] == [
        (f.name, f.type, f.stale, f.description) for f in by_client_api.flags
    ]
    # Reading the playground records nothing in Unleash's event log.
    assert [e.id for e in events_after] == [e.id for e in events_before]


@pytest.mark.parametrize(
    ("token", "environment"),
    [
        ("*:production.5f3a", "production"),
        ("default:development.9c1e", "development"),
        ("*:*.admin", None),
        ("user:0123456789abcdef", None),
        ("no-format", None),
    ],
)
def test_a_backend_token_names_its_environment(token: str, environment: str | None) -> None:
    assert token_environment(token) == environment
