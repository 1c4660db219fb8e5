"""Shared fixtures: real PostgreSQL and Redis for the whole run, databases cloned from templates.

Servers: ``KROWOC_TEST_DATABASE_URL`` / ``KROWOC_TEST_REDIS_URL`` when set (for example the
machine's PostgreSQL 15 and Redis 7), else the embedded default, started for the run and stopped
after it when the run started it. Each run makes its own databases (``krowoc_test_<run>_*``, see
``tests.support.databases``) and Redis key prefix, and removes them at the end.

The run may be split over parallel workers (pytest-xdist, ``make test`` does): the controlling
process starts the embedded stack before the workers and stops it, and sweeps the run's databases
and keys, after them (one sweep, several drops at once); each worker has a key prefix of its own.

Helpers that tests import live in ``tests.support``; this file holds fixtures only.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

from core.adapters.db import libpq_url
from core.adapters.redis import make_redis
from core.bootstrap import Services, build_services
from core.config import Settings, get_settings
from core.domain.models import Actor, Role
from devstack.flags import seed_flags
from devstack.stack import EmbeddedStack
from devstack.unleash import UnleashServer
from tests.support.databases import OPERATE_PLAN, RUN_ID, RUN_UID, SHARED_PLAN, WORKER, RunDatabases, SeedPlan
from tests.support.network import free_port
from tests.support.settings import TEST_ENV, actor, settings_for
from tests.support.unleash import RunningUnleash, require_unleash

RUN_KEY_PREFIX = f"krowoc-test-{RUN_ID}-"
"""Every Redis key the run writes starts with this (then the worker's name)."""
_STARTED_STACK = pytest.StashKey[bool]()

os.environ.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")
# Tests act as a few names many times in a run: every dashboard, command and service they start is
# configured without the per-person action limit (the throttle's own tests set theirs).
os.environ.update(TEST_ENV)


def _embedded() -> EmbeddedStack:
    return EmbeddedStack(Settings(database_url=None, redis_url=None))


def _test_servers() -> tuple[str, str]:
    """Return (PostgreSQL server URL, Redis URL): the configured test servers, else the embedded stack's."""
    base = Settings()
    if base.test_database_url and base.test_redis_url:
        return base.test_database_url, base.test_redis_url
    urls = _embedded().urls()
    return base.test_database_url or urls.database_url, base.test_redis_url or urls.redis_url


def _needs_the_embedded_stack() -> bool:
    base = Settings()
    return not (base.test_database_url and base.test_redis_url)


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    """Give the parallel workers this process's run id, so the run's end can find all they made."""
    if not _is_worker(config) and getattr(config.option, "testrunuid", "absent") is None:
        config.option.testrunuid = RUN_UID


def pytest_sessionstart(session: pytest.Session) -> None:
    """Start the embedded stack once for the run, before any worker starts, unless it runs already."""
    if _is_worker(session.config) or not _needs_the_embedded_stack():
        return
    stack = _embedded()
    if not stack.is_up():
        stack.up()
        session.config.stash[_STARTED_STACK] = True


def pytest_sessionfinish(session: pytest.Session) -> None:
    """After every worker: drop the run's databases and keys, and stop the stack if the run started it."""
    if _is_worker(session.config):
        return
    database_url, redis_url = _test_servers()
    try:
        RunDatabases(database_url).drop_run()
        client = redis.Redis.from_url(redis_url)
        try:
            for key in client.scan_iter(match=f"{RUN_KEY_PREFIX}*", count=1000):
                client.delete(key)
        finally:
            client.close()
    finally:
        if session.config.stash.get(_STARTED_STACK, False):
            _embedded().down()


@pytest.fixture(autouse=True)
def dashboard_services_closed() -> Iterator[None]:
    """Close the services an in-process dashboard (AppTest) built in the test, and their connections."""
    yield
    services_module = sys.modules.get("dashboard.services")
    if services_module is not None:
        services_module.close_all()


@pytest.fixture(scope="session")
def servers() -> tuple[str, str]:
    """Return (PostgreSQL server URL, Redis URL) for the run: configured test servers or the embedded stack."""
    if _needs_the_embedded_stack() and not _embedded().is_up():
        _embedded().up()  # a worker started without the controlling process's hooks
    return _test_servers()


@pytest.fixture(scope="session")
def redis_prefix() -> str:
    """Return the key prefix of this worker in this run: every key it writes starts with it."""
    return f"{RUN_KEY_PREFIX}{WORKER}:"


@pytest.fixture(scope="session")
def redis_url(servers: tuple[str, str], redis_prefix: str) -> Iterator[str]:
    """Yield the Redis of the run, and delete the run's keys when it ends."""
    url = servers[1]
    yield url
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{redis_prefix}*", count=1000))
        for chunk in range(0, len(keys), 500):
            client.delete(*keys[chunk : chunk + 500])
    finally:
        client.close()


@pytest.fixture(scope="session")
def databases(servers: tuple[str, str]) -> RunDatabases:
    """Return the run's databases on the test server (the run's end drops them all, in one sweep)."""
    return RunDatabases(servers[0])


@pytest.fixture()
def make_database(databases: RunDatabases) -> Callable[..., str]:
    """Make a fresh database (migrated, no rows; no schema at all with ``empty=True``) and return its URL."""

    def make(*, empty: bool = False) -> str:
        return databases.empty() if empty else databases.migrated()

    return make


@pytest.fixture()
def seeded_copy(databases: RunDatabases) -> Callable[[SeedPlan], str]:
    """Return a copy of a seeded platform (seeded once per run and plan) that the test may change."""
    return databases.seeded


@pytest.fixture(scope="session")
def seeded_database_url(databases: RunDatabases) -> str:
    """Return one database with a small realistic platform, shared by read-only tests."""
    return databases.seeded(SHARED_PLAN)


@pytest.fixture(scope="session")
def operate_database_url(databases: RunDatabases) -> str:
    """Return a database with a few days of traffic, refreshed once (so its error table exists); read it only."""
    return databases.seeded(OPERATE_PLAN)


@pytest.fixture()
def operate_services(operate_database_url: str, redis_url: str, redis_prefix: str) -> Iterator[Services]:
    """Yield services on the operators' seeded database (read it, do not write to it)."""
    built = build_services(settings_for(operate_database_url, redis_url, redis_prefix))
    yield built
    built.close()


@pytest.fixture(scope="session")
def unleash(databases: RunDatabases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningUnleash]:
    """Start a real unleash-server for the run on a loopback port and an empty database, with the registered flags."""
    require_unleash()
    database_url = libpq_url(databases.empty())
    server = UnleashServer(tmp_path_factory.mktemp("unleash"), free_port(), database_url)
    endpoint = server.up()
    try:
        seed_flags(endpoint, database_url=database_url)
        yield RunningUnleash(server, endpoint, database_url)
    finally:
        server.down()


@pytest.fixture()
def prefix(redis_prefix: str) -> str:
    """Return a key prefix of this test's own under the run's prefix."""
    return f"{redis_prefix}{uuid.uuid4().hex[:8]}:"


@pytest.fixture()
def client(redis_url: str) -> Iterator[redis.Redis]:
    """Yield a client of the run's Redis, closed after the test."""
    built = make_redis(redis_url)
    yield built
    built.close()


@pytest.fixture()
def services(make_database: Callable[..., str], redis_url: str, redis_prefix: str) -> Iterator[Services]:
    """Yield services on a fresh, migrated, empty database."""
    built = build_services(settings_for(make_database(), redis_url, redis_prefix))
    yield built
    built.close()


@pytest.fixture()
def isolated(make_database: Callable[..., str], redis_url: str, prefix: str) -> Iterator[Services]:
    """Yield services on a fresh database with a Redis prefix of their own (namespace versions start at 0)."""
    built = build_services(settings_for(make_database(), redis_url, prefix))
    yield built
    built.close()


@pytest.fixture()
def seeded_services(seeded_database_url: str, redis_url: str, redis_prefix: str) -> Iterator[Services]:
    """Yield services on the shared seeded database (do not write to it)."""
    built = build_services(settings_for(seeded_database_url, redis_url, redis_prefix))
    yield built
    built.close()


@pytest.fixture()
def cli_env(
    make_database: Callable[..., str], prefix: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, str]]:
    """Give the command line a fresh database and a key prefix of this test's own, through the environment."""
    url = make_database()
    monkeypatch.setenv("KROWOC_DATABASE_URL", url)
    monkeypatch.setenv("KROWOC_REDIS_URL", redis_url)
    monkeypatch.setenv("KROWOC_REDIS_KEY_PREFIX", prefix)
    get_settings.cache_clear()
    yield url, prefix
    get_settings.cache_clear()


@pytest.fixture()
def app_env(
    seeded_database_url: str, redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """Point the dashboard (run in-process by AppTest) at the seeded test database."""
    monkeypatch.setenv("KROWOC_DATABASE_URL", seeded_database_url)
    monkeypatch.setenv("KROWOC_REDIS_URL", redis_url)
    monkeypatch.setenv("KROWOC_REDIS_KEY_PREFIX", redis_prefix)
    monkeypatch.setenv("KROWOC_DEV_LOGIN", "true")
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture()
def support_actor() -> Actor:
    """Return a member of the support team."""
    return actor(Role.SUPPORT)


@pytest.fixture()
def operator_actor() -> Actor:
    """Return an operator."""
    return actor(Role.OPERATOR)


@pytest.fixture()
def admin_actor() -> Actor:
    """Return an admin."""
    return actor(Role.ADMIN)
