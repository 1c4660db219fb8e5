"""Incidents started and ended from the shell in a running simulator, through Redis, into PostgreSQL.

The simulators here zero their providers' normal error rates, so every failed execution they write
comes from an incident (or from the breaker the incident opened).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from structlog.testing import capture_logs
from typer.testing import CliRunner

from cli.main import app, main
from core.adapters.redis import make_redis
from core.bootstrap import Services, build_services
from core.config import get_settings
from core.providers.breaker import BreakerState
from devstack.simulator import INCIDENTS_KEY, IncidentChannel, TrafficSimulator
from devstack.simulator.incidents import Incident
from tests.support.polling import wait_for
from tests.support.settings import PROJECT_ROOT, settings_for

OUTAGE = "provider_outage:openai"
SPIKE = "latency_spike:anthropic"
DEADLINE = 60.0

runner = CliRunner()


@pytest.fixture()
def env(cli_env: tuple[str, str], redis_url: str) -> Iterator[Services]:
    """Yield the services a simulator runs on, over the command line's database and key prefix (``cli_env``)."""
    url, prefix = cli_env
    services = build_services(settings_for(url, redis_url, prefix))
    yield services
    services.close()


def _simulator(services: Services, channel: IncidentChannel | None = None) -> TrafficSimulator:
    prefix = services.settings.redis_key_prefix
    simulator = TrafficSimulator(
        services, rate=100, seed=11, refresh_every=None, channel=channel or IncidentChannel(services.redis, prefix)
    )
    for provider in simulator.router.providers.values():
        provider.error_rates = {}  # type: ignore[attr-defined]
    # A shorter cooldown than the default 15 s, so openai's breaker closes soon after the outage ends.
    simulator.breakers.cooldown_seconds = 1.0
    return simulator


@contextmanager
def _running(simulator: TrafficSimulator) -> Iterator[None]:
    """Run the simulator in a thread for the block; an error in it fails the test."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            simulator.run(duration=None, stop=stop)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, name="simulator", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(DEADLINE)
    assert not thread.is_alive(), "the simulator did not stop"
    assert errors == []


def _executions(services: Services, since: datetime | None = None) -> list[tuple[str, str | None]]:
    """Return (provider, error category) of every execution written, or of those created after ``since``."""
    with services.db.read() as conn:
        rows = conn.execute(
            text(
                "SELECT provider, error_category FROM prompt_executions"
                " WHERE created_at > coalesce(CAST(:since AS timestamptz), '-infinity') ORDER BY id"
            ),
            {"since": since},
        ).all()
    return [(provider, category) for provider, category in rows]


def _listed(services: Services) -> dict[bytes, bytes]:
    return services.redis.hgetall(f"{services.settings.redis_key_prefix}{INCIDENTS_KEY}")  # type: ignore[return-value]


def _cli(*args: str) -> str:
    result = runner.invoke(app, ["simulate", "incident", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_an_incident_started_from_the_shell_hits_a_running_simulator_until_it_is_ended(env: Services) -> None:
    simulator = _simulator(env)
    with capture_logs() as logs, _running(simulator):
        wait_for(lambda: len(_executions(env)) >= 100, "the simulator wrote no executions", timeout=DEADLINE)
        assert {category for _, category in _executions(env)} == {None}

        assert f"Started {OUTAGE}" in _cli("start", OUTAGE)
        # Pinned openai executions fail as provider_unavailable; the others fall back to anthropic.
        wait_for(
            lambda: ("openai", "provider_unavailable") in _executions(env),
            "no openai execution failed",
            timeout=DEADLINE,
        )
        assert simulator.incidents.in_force() == {Incident.parse(OUTAGE)}
        listed = _cli("list")
        assert OUTAGE in listed and "started by the command line" in listed

        assert f"Ended {OUTAGE}." in _cli("end", OUTAGE)
        wait_for(lambda: not simulator.incidents.in_force(), "the simulator did not end the outage", timeout=DEADLINE)
        wait_for(
            lambda: simulator.breakers.status("openai").state is BreakerState.CLOSED,
            "openai's breaker did not close again",
            timeout=DEADLINE,
        )
        # Executions created from now on come from batches that began with the outage over and the breaker closed.
        recovered = datetime.now(UTC)
        wait_for(
            lambda: sum(provider == "openai" for provider, _ in _executions(env, recovered)) >= 50,
            "openai served no executions after the outage",
            timeout=DEADLINE,
        )
    assert {category for _, category in _executions(env, recovered)} == {None}
    assert "No incident is in force" in _cli("list")
    changes = [(e["event"], e["incident"]) for e in logs if e["event"] in ("incident started", "incident ended")]
    assert changes == [("incident started", OUTAGE), ("incident ended", OUTAGE)]


def test_bad_incident_commands_are_refused_in_one_line_and_change_nothing(
    env: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    assert f"Started {SPIKE}" in _cli("start", SPIKE)
    simulator = _simulator(env)
    simulator.follow_incidents()
    assert simulator.incidents.in_force() == {Incident.parse(SPIKE)}
    before = _listed(env)
    for argv, message in [
        (["start", "provider_outage:acme"], "Unknown provider 'acme'"),
        (["start", "meteor"], "Unknown incident 'meteor'"),
        (["start", "latency_spike"], "needs a provider"),
        (["end", "rate_limit_storm:acme"], "Unknown provider 'acme'"),
        (["end"], "or pass --all"),
        (["end", SPIKE, "--all"], "not both"),
        (["stop", SPIKE], "No such command 'stop'"),
    ]:
        assert main(["simulate", "incident", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, (argv, err)
    # Options of a simulator run given with `incident` would be silently dropped: refused instead.
    assert main(["simulate", "--rate", "5", "incident", "end", "--all"]) == 2
    assert "--rate is an option of a simulator run" in capsys.readouterr().err
    assert _listed(env) == before
    simulator.follow_incidents()
    assert simulator.incidents.in_force() == {Incident.parse(SPIKE)}


def test_a_launch_incident_is_listed_so_the_shell_can_end_it(env: Services) -> None:
    simulator = _simulator(env)
    simulator.launch(Incident.parse(OUTAGE))
    with _running(simulator):
        wait_for(lambda: OUTAGE.encode() in _listed(env), "the launch incident was not listed", timeout=DEADLINE)
        assert "started by the simulator on" in _cli("list")
        wait_for(
            lambda: ("openai", "provider_unavailable") in _executions(env),
            "no openai execution failed",
            timeout=DEADLINE,
        )
        assert f"Ended {OUTAGE}." in _cli("end", "--all")
        wait_for(
            lambda: not simulator.incidents.in_force(),
            "the simulator did not end its launch incident",
            timeout=DEADLINE,
        )
    simulator.withdraw_launch()
    assert _listed(env) == {}


def test_a_launch_incident_started_again_from_the_shell_outlives_its_simulator(env: Services) -> None:
    simulator = _simulator(env)
    simulator.launch(Incident.parse(OUTAGE))
    simulator.follow_incidents()
    assert "started by the simulator on" in _cli("list")
    assert "launch incident of the simulator on" in _cli("start", OUTAGE)
    simulator.withdraw_launch()
    assert "started by the command line" in _cli("list")
    assert list(_listed(env)) == [OUTAGE.encode()]


def test_a_hand_written_entry_that_names_no_incident_is_skipped_and_logged_once(env: Services) -> None:
    key = f"{env.settings.redis_key_prefix}{INCIDENTS_KEY}"
    env.redis.hset(key, mapping={"meteor:openai": "{}", OUTAGE: "not json"})
    simulator = _simulator(env)
    with capture_logs() as logs:
        simulator.follow_incidents()
        simulator.follow_incidents()
    assert simulator.incidents.in_force() == {Incident.parse(OUTAGE)}
    assert [(e["event"], e["entry"]) for e in logs if e["log_level"] == "warning"] == [
        ("unknown incident on the channel skipped", "meteor:openai")
    ]
    assert _cli("list").splitlines() == [
        f"{OUTAGE:<28} since an unknown time, started by someone unknown",
        f"{'meteor:openai':<28} skipped by the simulators (Unknown incident 'meteor': use one of provider_outage, "
        "rate_limit_storm, latency_spike); `simulate incident end --all` clears it",
    ]
    assert "Ended meteor:openai, provider_outage:openai." in _cli("end", "--all")


def test_simulate_with_an_incident_lists_it_while_running_and_takes_it_off_when_stopped(
    env: Services, tmp_path: Path
) -> None:
    assert f"Started {SPIKE}" in _cli("start", SPIKE)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        metrics_port = sock.getsockname()[1]
    log = tmp_path / "simulator.log"
    with log.open("wb") as out:
        simulator = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "simulate", "--rate", "50", "--refresh-every", "0", "--seed", "3",
             "--metrics-port", str(metrics_port), "--incident", OUTAGE],
            cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_for(
            lambda: OUTAGE.encode() in _listed(env) or simulator.poll() is not None,
            "the launch incident was not listed",
            timeout=DEADLINE,
        )
        assert simulator.poll() is None, log.read_text()
        assert f"started by the simulator on {socket.gethostname()} (pid {simulator.pid})" in _cli("list")
        wait_for(
            lambda: ("openai", "provider_unavailable") in _executions(env),
            "no openai execution failed",
            timeout=DEADLINE,
        )
    finally:
        simulator.terminate()  # stops it the way Ctrl-C does
        try:
            code = simulator.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            simulator.kill()
            simulator.wait()
            raise
    output = log.read_text()
    assert code == 0, output
    assert f"Incident started: {OUTAGE}" in output and "Ran " in output
    # Its own launch incident went with it; the one started from the shell stays for the next simulator.
    assert list(_listed(env)) == [SPIKE.encode()]


def test_with_redis_down_a_simulator_keeps_its_incidents_and_says_so_once(
    env: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = env.settings.redis_key_prefix
    simulator = _simulator(env, IncidentChannel(make_redis("redis://127.0.0.1:1/0"), prefix))
    outage = Incident.parse(OUTAGE)
    simulator.launch(outage)
    with capture_logs() as logs:
        for _ in range(3):
            simulator.follow_incidents()
    assert simulator.incidents.in_force() == {outage}
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
        "incident channel unreachable; keeping the incidents in force until it answers"
    ]

    # Redis answers again: the launch incident is listed then, and the channel rules from there on.
    simulator.channel = IncidentChannel(env.redis, prefix)
    with capture_logs() as logs:
        simulator.follow_incidents()
    assert [e["event"] for e in logs] == ["incident channel reachable again"]
    assert list(_listed(env)) == [OUTAGE.encode()]
    assert f"Ended {OUTAGE}." in _cli("end", OUTAGE)
    simulator.follow_incidents()
    assert simulator.incidents.in_force() == set()

    monkeypatch.setenv("KROWOC_REDIS_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    refused = runner.invoke(app, ["simulate", "incident", "start", SPIKE])
    assert refused.exit_code == 1
    assert refused.stderr.startswith("error: cannot reach Redis") and refused.stderr.count("\n") == 1
