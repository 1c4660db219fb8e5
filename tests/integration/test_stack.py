"""The embedded default: a private PostgreSQL and Valkey, and the background processes of the live demo.

These tests never use the run's shared servers: each stack here has its own state folder under
the test's temporary directory and its own ports, and is stopped in the fixture's teardown.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, closing
from datetime import UTC, datetime
from pathlib import Path

import psutil
import psycopg
import pytest
import redis

from cli.main import main
from core.config import Settings, get_settings
from devstack import oidc, processes
from devstack import prometheus as prometheus_server
from devstack.network import port_taken
from devstack.node import PACKAGE_DIR
from devstack.processes import StackProcess
from devstack.stack import EmbeddedStack, StackError, StackUrls, _valkey_bin, _wait_for_port
from tests.support.polling import wait_for

# Its tests share one module stack of their own: one worker runs them all.
pytestmark = pytest.mark.xdist_group("stack")


def free_ports(count: int) -> list[int]:
    """Return distinct ports that nothing listens on right now."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def stack_settings(state_dir: Path, pg_port: int, redis_port: int) -> Settings:
    # URLs set to None explicitly: a run against real servers may have KROWOC_*_URL in the environment.
    return Settings(
        state_dir=state_dir,
        embedded_postgres_port=pg_port,
        embedded_redis_port=redis_port,
        database_url=None,
        redis_url=None,
    )


def stop(stack: EmbeddedStack) -> None:
    """Stop what the stack started; if that fails, ends its own processes by their pids."""
    try:
        stack.down()
    finally:
        for component in stack.status():
            if component.pid is not None:
                psutil.Process(component.pid).kill()


def pids(stack: EmbeddedStack) -> dict[str, int | None]:
    return {c.name: c.pid for c in stack.status()}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    """One private stack for the module (PostgreSQL's initdb is the slow part), stopped at the end."""
    pg_port, redis_port = free_ports(2)
    built = EmbeddedStack(stack_settings(tmp_path_factory.mktemp("stack"), pg_port, redis_port))
    try:
        yield built
    finally:
        stop(built)


@pytest.fixture()
def running(stack: EmbeddedStack) -> tuple[EmbeddedStack, StackUrls]:
    """Return the module's stack, started again if a previous test stopped it."""
    return stack, stack.up()


@pytest.fixture()
def decoy_valkey(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Start a Valkey the stack did not start, on another port; stop it after the test."""
    (port,) = free_ports(1)
    folder = tmp_path / "decoy"
    folder.mkdir()
    proc = subprocess.Popen(
        [
            str(_valkey_bin()),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert _wait_for_port(port, 15), "the decoy valkey did not start"
        yield proc, port
    finally:
        proc.terminate()
        proc.wait(10)


def test_up_starts_postgres_and_valkey_and_reports_their_urls(
    running: tuple[EmbeddedStack, StackUrls],
) -> None:
    stack, urls = running
    assert urls == StackUrls(
        database_url=f"postgresql://postgres@127.0.0.1:{stack.pg_port}/krowoc",
        redis_url=f"redis://127.0.0.1:{stack.redis_port}/0",
    )
    assert json.loads(stack.state_file.read_text()) == {
        "database_url": urls.database_url,
        "redis_url": urls.redis_url,
    }
    with psycopg.connect(urls.database_url) as conn:
        row = conn.execute("SELECT current_database(), current_setting('port'), current_setting('listen_addresses')")
        assert row.fetchone() == ("krowoc", str(stack.pg_port), "127.0.0.1")
    client = redis.Redis.from_url(urls.redis_url)
    try:
        assert client.ping()
        assert client.config_get("port") == {"port": str(stack.redis_port)}
        assert client.config_get("bind")["bind"] == "127.0.0.1"
        # The data folder is this stack's own.
        assert client.config_get("dir")["dir"] == str(stack.valkey_dir.resolve())
    finally:
        client.close()


def test_a_second_up_is_a_no_op(running: tuple[EmbeddedStack, StackUrls]) -> None:
    stack, urls = running
    before = pids(stack)
    assert all(before.values())
    assert stack.up() == urls
    assert pids(stack) == before


def test_status_reports_both_servers_running(running: tuple[EmbeddedStack, StackUrls]) -> None:
    stack, urls = running
    postgres, valkey = stack.status()
    assert (postgres.name, postgres.running, postgres.url) == ("postgres", True, urls.database_url)
    assert (valkey.name, valkey.running, valkey.url) == ("valkey", True, urls.redis_url)
    assert postgres.pid is not None and valkey.pid is not None
    assert str(stack.pg_data) in " ".join(psutil.Process(postgres.pid).cmdline())
    assert "valkey" in psutil.Process(valkey.pid).name()
    assert stack.is_up()


def test_down_stops_only_its_own_servers(
    running: tuple[EmbeddedStack, StackUrls], decoy_valkey: tuple[subprocess.Popen[bytes], int]
) -> None:
    stack, _ = running
    decoy, decoy_port = decoy_valkey
    started = pids(stack)
    assert stack.down() == ["postgres", "valkey"]
    for pid in started.values():
        assert pid is not None and not psutil.pid_exists(pid)
    assert not port_taken(stack.pg_port)
    assert not port_taken(stack.redis_port)
    assert not stack.state_file.exists()
    assert [c.running for c in stack.status()] == [False, False]
    assert decoy.poll() is None
    assert redis.Redis(port=decoy_port).ping()
    # A second down has nothing left to stop.
    assert stack.down() == []


def test_a_stale_pid_file_never_makes_another_server_ours(
    stack: EmbeddedStack, decoy_valkey: tuple[subprocess.Popen[bytes], int]
) -> None:
    """After a crash the pid files stay behind; their pid may now belong to a server we did not start."""
    decoy, decoy_port = decoy_valkey
    stop(stack)
    pg_pidfile = stack.pg_data / "postmaster.pid"
    try:
        stack.valkey_pidfile.write_text(f"{decoy.pid}\n")
        pg_pidfile.write_text(f"{decoy.pid}\n{stack.pg_data}\n")
        assert [c.running for c in stack.status()] == [False, False]
        assert stack.down() == []
        assert decoy.poll() is None
        assert redis.Redis(port=decoy_port).ping()
    finally:
        stack.valkey_pidfile.unlink(missing_ok=True)
        pg_pidfile.unlink(missing_ok=True)


@pytest.mark.parametrize("taken", ["postgres", "valkey"])
def test_a_taken_port_is_refused_and_nothing_starts(tmp_path: Path, taken: str) -> None:
    pg_port, redis_port = free_ports(2)
    busy = pg_port if taken == "postgres" else redis_port
    setting = "KROWOC_EMBEDDED_POSTGRES_PORT" if taken == "postgres" else "KROWOC_EMBEDDED_REDIS_PORT"
    stack = EmbeddedStack(stack_settings(tmp_path / "state", pg_port, redis_port))
    with closing(socket.socket()) as listener:
        listener.bind(("127.0.0.1", busy))
        listener.listen()
        try:
            with pytest.raises(StackError) as caught:
                stack.up()
            message = str(caught.value)
            assert f"Port {busy} on 127.0.0.1 is taken" in message
            assert setting in message
            assert [c.running for c in stack.status()] == [False, False]
            free = redis_port if taken == "postgres" else pg_port
            assert not port_taken(free)
            assert not (stack.pg_data / "PG_VERSION").exists()
            assert not stack.valkey_pidfile.exists()
        finally:
            stop(stack)


@pytest.mark.parametrize(
    "configured",
    [
        {"database_url": "postgresql://postgres@127.0.0.1:5432/krowoc"},
        {"redis_url": "redis://127.0.0.1:6379/0"},
    ],
)
def test_up_refuses_when_real_servers_are_configured(tmp_path: Path, configured: dict[str, str]) -> None:
    state_dir = tmp_path / "state"
    options: dict[str, object] = {"database_url": None, "redis_url": None, **configured}
    stack = EmbeddedStack(Settings(state_dir=state_dir, **options))  # type: ignore[arg-type]
    with pytest.raises(StackError, match="KROWOC_DATABASE_URL / KROWOC_REDIS_URL are set"):
        stack.up()
    assert not state_dir.exists()


def test_up_refuses_when_the_database_url_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KROWOC_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/krowoc")
    state_dir = tmp_path / "state"
    with pytest.raises(StackError, match="nothing embedded is started"):
        EmbeddedStack(Settings(state_dir=state_dir)).up()
    assert not state_dir.exists()


# -- the stack's background processes ---------------------------------------------------------


def gone(pid: int) -> bool:
    """Tell whether a process has ended (a zombie waiting for its parent counts as ended)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


SLEEPER = [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(600)"]


def test_a_background_process_is_tracked_by_its_pid_file_and_logs_under_the_stack(tmp_path: Path) -> None:
    settings = stack_settings(tmp_path / "state", *free_ports(2))
    process = StackProcess(settings, "sleeper")
    try:
        pid = process.start(SLEEPER)

        assert process.pid() == pid and process.status().running
        assert process.pidfile == tmp_path / "state" / "run" / "sleeper.json"
        assert process.log == tmp_path / "state" / "logs" / "sleeper.log"
        wait_for(lambda: "started" in process.log.read_text(), "the process's output in its log", timeout=30)
        assert process.start(SLEEPER) == pid  # a second start is a no-op
        # Its own session: Ctrl-C in the terminal that started it does not reach it.
        assert os.getsid(pid) == pid
        assert [p.name for p in processes.known(settings)] == ["sleeper"]
    finally:
        stopped = process.stop()
    assert stopped and gone(pid)
    assert process.pid() is None and not process.pidfile.exists()
    assert not process.stop()


def test_a_stale_process_record_never_makes_another_process_ours(tmp_path: Path) -> None:
    settings = stack_settings(tmp_path / "state", *free_ports(2))
    decoy = subprocess.Popen(SLEEPER, stdout=subprocess.DEVNULL)
    try:
        process = StackProcess(settings, "simulator")
        process.pidfile.parent.mkdir(parents=True)
        # The decoy's pid and command line, but another start time: a pid reused after a crash.
        started = psutil.Process(decoy.pid).create_time() - 3600
        record = {"pid": decoy.pid, "started": started, "argv": psutil.Process(decoy.pid).cmdline()}
        process.pidfile.write_text(json.dumps(record))

        assert process.pid() is None and not process.status().running
        assert processes.stop_all(settings) == []
        assert decoy.poll() is None
    finally:
        decoy.kill()
        decoy.wait(10)


def test_the_demo_s_live_traffic_backfills_then_runs_under_the_stack_until_down(
    running: tuple[EmbeddedStack, StackUrls], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stack, urls = running
    for name in ("KROWOC_DATABASE_URL", "KROWOC_REDIS_URL", "KROWOC_DATABASE_REPLICA_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KROWOC_STATE_DIR", str(stack.root))
    monkeypatch.setenv("KROWOC_EMBEDDED_POSTGRES_PORT", str(stack.pg_port))
    monkeypatch.setenv("KROWOC_EMBEDDED_REDIS_PORT", str(stack.redis_port))
    get_settings.cache_clear()
    url = urls.database_url
    # As make demo does it, through the command line.
    assert main(["migrate"]) == 0
    assert main(["db", "roles"]) == 0
    assert main(["seed", "--executions", "3000", "--days", "1", "--seed", "9", "--if-empty", "--no-progress"]) == 0
    with psycopg.connect(url, autocommit=True) as conn:  # the demo was down for the last half hour
        conn.execute("DELETE FROM execution_payloads WHERE created_at > now() - interval '30 minutes'")
        conn.execute("DELETE FROM prompt_executions WHERE created_at > now() - interval '30 minutes'")
    metrics_port = free_ports(1)[0]
    try:
        assert main(["stack", "traffic", "--rate", "20", "--metrics-port", str(metrics_port)]) == 0
        out = capsys.readouterr().out
        assert "Backfilled" in out and "Folded" in out
        names = ["simulator", "rollups-refresh", "leaderboards-refresh"]
        live = {p.name: p for p in stack.processes()}
        assert sorted(live) == sorted(names) and all(p.running for p in live.values())
        assert all(p.log.parent == stack.root / "logs" for p in live.values())

        # The gap is filled at once: every one of the last 30 minutes has executions, rolled up.
        with psycopg.connect(url) as conn:
            [(minutes,)] = conn.execute(
                "SELECT count(DISTINCT date_trunc('minute', created_at)) FROM prompt_executions "
                "WHERE created_at > now() - interval '30 minutes'"
            ).fetchall()
            [(rolled,)] = conn.execute(
                "SELECT count(DISTINCT bucket_start) FROM execution_rollup_minute "
                "WHERE bucket_start > now() - interval '30 minutes'"
            ).fetchall()
        assert minutes >= 29 and rolled >= 29

        def newest_rolled_up() -> datetime:
            with psycopg.connect(url) as conn:
                [(newest,)] = conn.execute("SELECT max(bucket_start) FROM execution_rollup_minute").fetchall()
            assert isinstance(newest, datetime)
            return newest

        # The simulator's live executions reach the rollups through the refresher within seconds.
        started = datetime.now(UTC).replace(second=0, microsecond=0)
        wait_for(lambda: newest_rolled_up() >= started, "the live traffic in the minute rollup", timeout=90)
        wait_for(
            lambda: "Leaderboards computed" in live["leaderboards-refresh"].log.read_text(),
            "the leaderboards refresher's first run",
            timeout=90,
        )
        wait_for(
            lambda: "Simulating 20 executions/s" in live["simulator"].log.read_text(),
            "the simulator's start line",
            timeout=30,
        )
        # A second start starts nothing twice.
        pids = {p.name: p.pid for p in stack.processes()}
        assert main(["stack", "traffic", "--rate", "20", "--metrics-port", str(metrics_port)]) == 0
        assert "already running" in capsys.readouterr().out
        assert {p.name: p.pid for p in stack.processes()} == pids
    finally:
        stopped = stack.down()
        get_settings.cache_clear()
    assert set(names) <= set(stopped)
    for pid in pids.values():
        assert pid is not None and gone(pid)
    assert stack.processes() == []


def test_stack_traffic_refuses_an_unseeded_database_and_starts_nothing(
    running: tuple[EmbeddedStack, StackUrls], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stack, urls = running
    monkeypatch.delenv("KROWOC_DATABASE_URL", raising=False)
    monkeypatch.delenv("KROWOC_REDIS_URL", raising=False)
    monkeypatch.setenv("KROWOC_STATE_DIR", str(stack.root))
    monkeypatch.setenv("KROWOC_EMBEDDED_POSTGRES_PORT", str(stack.pg_port))
    monkeypatch.setenv("KROWOC_EMBEDDED_REDIS_PORT", str(stack.redis_port))
    get_settings.cache_clear()
    with psycopg.connect(urls.database_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    try:
        assert main(["migrate"]) == 0
        assert main(["db", "roles"]) == 0
        assert main(["stack", "traffic"]) == 2
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: The database is not seeded") and "\n" not in err
    assert stack.processes() == []


def test_without_prometheus_stack_up_says_in_one_line_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    settings = stack_settings(tmp_path / "state", *free_ports(2))

    note = prometheus_server.start_embedded(settings)

    assert "\n" not in note and "not configured" in note
    assert "apt-get install prometheus" in note and "krowoc-admin stack up" in note
    assert not (tmp_path / "state" / "prometheus" / "prometheus.pid").exists()


def test_the_openid_provider_waits_for_its_start_script_and_says_so(tmp_path: Path) -> None:
    settings = stack_settings(tmp_path / "state", *free_ports(2))
    assert oidc.START_SCRIPT.parent == PACKAGE_DIR
    assert "oidc-provider" in json.loads((PACKAGE_DIR / "package.json").read_text())["dependencies"]
    if oidc.START_SCRIPT.exists():
        pytest.skip("the OpenID provider's start script exists: its own tests cover it")

    note = oidc.start_embedded(settings)

    assert note.startswith("not started:") and oidc.START_SCRIPT.name in note and "\n" not in note
    assert oidc.provider_process(settings).pid() is None
    assert processes.known(settings) == []
