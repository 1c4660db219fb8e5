"""Shared fixtures: real PostgreSQL and Redis for the whole run, a fresh database per need.

Servers: ``KROWOC_TEST_DATABASE_URL`` / ``KROWOC_TEST_REDIS_URL`` when set (for example the
machine's PostgreSQL 15 and Redis 7), else the embedded default, started for the run and stopped
after it when the run started it. Each run makes its own databases (``krowoc_test_<run>_*``)
and Redis key prefix and removes them at the end.
"""

from __future__ import annotations

import itertools
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from core.adapters import migrate
from core.adapters.db import libpq_url, normalize_url
from core.bootstrap import Services, build_services
from core.config import Settings, get_settings
from core.domain.models import Actor, AuditSource, Role
from devstack.stack import EmbeddedStack

RUN_ID = uuid.uuid4().hex[:8]
_counter = itertools.count()


def require_tool(available: bool, what: str, install: str) -> None:
    """Skips the test when a tool is missing, saying how to install it; in CI that is a failure."""
    if available:
        return
    message = f"{what} is not available: {install}"
    if get_settings().require_all_tools:
        pytest.fail(message + " (KROWOC_REQUIRE_ALL_TOOLS is set, so nothing may skip)")
    pytest.skip(message)


def require_binary(name: str, install: str) -> str:
    """Returns the path of a program on PATH, or skips (fails in CI) saying how to install it."""
    path = shutil.which(name)
    require_tool(path is not None, name, install)
    assert path is not None
    return path


def _with_db(url: str, name: str) -> str:
    base, _, _ = normalize_url(url).rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def servers() -> Iterator[tuple[str, str]]:
    """Yields (PostgreSQL server URL, Redis URL) for the run: configured test servers or the embedded stack."""
    base = Settings()
    if base.test_database_url and base.test_redis_url:
        yield base.test_database_url, base.test_redis_url
        return
    stack = EmbeddedStack(Settings(database_url=None, redis_url=None))
    started = not stack.is_up()
    urls = stack.up()
    try:
        yield (
            base.test_database_url or urls.database_url,
            base.test_redis_url or urls.redis_url,
        )
    finally:
        if started:
            stack.down()


@pytest.fixture(scope="session")
def redis_prefix() -> str:
    return f"krowoc-test-{RUN_ID}:"


@pytest.fixture(scope="session")
def redis_url(servers: tuple[str, str], redis_prefix: str) -> Iterator[str]:
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
def _databases(servers: tuple[str, str]) -> Iterator[list[str]]:
    created: list[str] = []
    yield created
    admin = libpq_url(_with_db(servers[0], "postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in reversed(created):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _create_database(servers: tuple[str, str], created: list[str], template: str | None = None) -> str:
    name = f"krowoc_test_{RUN_ID}_{next(_counter)}"
    admin = libpq_url(_with_db(servers[0], "postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        clause = f' TEMPLATE "{template}"' if template else ""
        conn.execute(f'CREATE DATABASE "{name}"{clause}')
    created.append(name)
    return name


@pytest.fixture(scope="session")
def template_database(servers: tuple[str, str], _databases: list[str]) -> str:
    """A database migrated to head, used as the template of the per-test ones."""
    name = _create_database(servers, _databases)
    migrate.upgrade(_with_db(servers[0], name))
    return name


@pytest.fixture()
def make_database(servers: tuple[str, str], _databases: list[str], template_database: str) -> Callable[..., str]:
    """Makes a fresh database (migrated unless ``empty=True``) and returns its URL."""

    def make(*, empty: bool = False) -> str:
        name = _create_database(servers, _databases, None if empty else template_database)
        return _with_db(servers[0], name)

    return make


def test_settings(database_url: str, redis_url: str, redis_prefix: str, **extra: object) -> Settings:
    """Builds settings that point at the test servers."""
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        redis_key_prefix=redis_prefix,
        dev_login=True,
        **extra,  # type: ignore[arg-type]
    )


test_settings.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test, wherever it is imported


SEED_EXECUTIONS = 40_000
SEED_DAYS = 14


@pytest.fixture(scope="session")
def seeded_database_url(servers: tuple[str, str], _databases: list[str], template_database: str) -> str:
    """One database with a small realistic platform seeded, shared by read-only tests."""
    from devstack.seed import SeedOptions, seed

    name = _create_database(servers, _databases, template_database)
    url = _with_db(servers[0], name)
    seed(url, SeedOptions(executions=SEED_EXECUTIONS, days=SEED_DAYS, seed=7), progress=False)
    return url


@pytest.fixture()
def services(make_database: Callable[..., str], redis_url: str, redis_prefix: str) -> Iterator[Services]:
    """Services on a fresh, migrated, empty database."""
    built = build_services(test_settings(make_database(), redis_url, redis_prefix))
    yield built
    built.close()


@pytest.fixture()
def seeded_services(seeded_database_url: str, redis_url: str, redis_prefix: str) -> Iterator[Services]:
    """Services on the shared seeded database (do not write to it)."""
    built = build_services(test_settings(seeded_database_url, redis_url, redis_prefix))
    yield built
    built.close()


@pytest.fixture()
def cli_env(
    make_database: Callable[..., str], redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, str]]:
    """A fresh database and a key prefix of this test's own, given to the command line through the environment."""
    url = make_database()
    prefix = f"{redis_prefix}{uuid.uuid4().hex[:8]}:"
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
    """Points the dashboard (run in-process by AppTest) at the seeded test database."""
    monkeypatch.setenv("KROWOC_DATABASE_URL", seeded_database_url)
    monkeypatch.setenv("KROWOC_REDIS_URL", redis_url)
    monkeypatch.setenv("KROWOC_REDIS_KEY_PREFIX", redis_prefix)
    monkeypatch.setenv("KROWOC_DEV_LOGIN", "true")
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def actor(role: Role, name: str | None = None) -> Actor:
    """Builds a staff actor of a role for tests."""
    return Actor(id=name or f"{role.value}@krowoc.test", role=role, source=AuditSource.CLI)


@pytest.fixture()
def support_actor() -> Actor:
    return actor(Role.SUPPORT)


@pytest.fixture()
def operator_actor() -> Actor:
    return actor(Role.OPERATOR)


@pytest.fixture()
def admin_actor() -> Actor:
    return actor(Role.ADMIN)


PROJECT_ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")
