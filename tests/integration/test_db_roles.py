"""Least-privilege roles: the app role cannot rewrite the audit log, yet does all the dashboard's work.

Each test makes roles of its own (role names are cluster-wide) and drops them at its end.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg.errors import InsufficientPrivilege
from sqlalchemy import text

from cli.main import main
from core.adapters import roles
from core.adapters.db import libpq_url, make_engine
from core.bootstrap import build_services
from core.config import get_settings
from core.domain.exceptions import InvalidInput, UnsafeConfiguration
from core.domain.models import Role, UserStatus
from core.executions.maintenance import RollupMaintenance, RollupRebuild
from core.users import UserStatusChange
from tests.support.apptest import errors, open_page, point_dashboard_at
from tests.support.databases import SeedPlan
from tests.support.faults import private_servers
from tests.support.settings import AUDITOR, actor, settings_for

PLAN = SeedPlan(executions=1_000, days=1, seed=21)


@dataclass(frozen=True)
class RoledDatabase:
    """A database with its app and read-only roles, and the URL of each."""

    owner_url: str
    app_url: str
    readonly_url: str
    app: str
    readonly: str


def as_role(url: str, role: str) -> str:
    """Return ``url`` with ``role`` as its user (the test server trusts loopback connections)."""
    scheme, rest = libpq_url(url).split("://", 1)
    return f"{scheme}://{role}@{rest.rsplit('@', 1)[-1]}"


@pytest.fixture()
def roled(seeded_copy: Callable[[SeedPlan], str]) -> Iterator[RoledDatabase]:
    url = seeded_copy(PLAN)
    tag = uuid.uuid4().hex[:10]
    app, readonly = f"krowoc_app_{tag}", f"krowoc_ro_{tag}"
    engine = make_engine(url, pool_size=1)
    try:
        with engine.begin() as conn:
            roles.apply_roles(conn, app=app, readonly=readonly, app_password="app secret", readonly_password="ro")
    finally:
        engine.dispose()
    try:
        yield RoledDatabase(url, as_role(url, app), as_role(url, readonly), app, readonly)
    finally:
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename IN (%s, %s)", (app, readonly)
            )
            conn.execute(f"DROP OWNED BY {app}, {readonly}")
            conn.execute(f"DROP ROLE {app}")
            conn.execute(f"DROP ROLE {readonly}")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET reason = 'rewritten'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only",
        "ALTER TABLE audit_log ADD COLUMN note text",
        "DROP TABLE audit_log",
        "CREATE TABLE audit_log_copy (id int)",
        "TRUNCATE users",
    ],
)
def test_the_app_role_cannot_rewrite_or_empty_the_audit_log(roled: RoledDatabase, statement: str) -> None:
    with psycopg.connect(roled.app_url) as conn:
        before = conn.execute("SELECT count(*), max(hash) FROM audit_log").fetchone()
        with pytest.raises(InsufficientPrivilege):
            conn.execute(statement)
        conn.rollback()
        assert conn.execute("SELECT count(*), max(hash) FROM audit_log").fetchone() == before


def test_the_read_only_role_reads_and_changes_nothing(roled: RoledDatabase) -> None:
    with psycopg.connect(roled.readonly_url) as conn:
        assert conn.execute("SELECT count(*) FROM prompt_executions").fetchone() == (PLAN.executions,)
        for statement in ("UPDATE users SET status = 'suspended'", "INSERT INTO audit_log (actor) VALUES ('x')"):
            with pytest.raises(InsufficientPrivilege):
                conn.execute(statement)
            conn.rollback()


def test_passwords_reach_the_server_as_scram_verifiers(roled: RoledDatabase) -> None:
    with psycopg.connect(libpq_url(roled.owner_url)) as conn:
        row = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (roled.app,)).fetchone()
    assert row is not None and row[0].startswith("SCRAM-SHA-256$4096:")
    assert "app secret" not in row[0]


def test_the_app_role_does_the_dashboards_work_and_the_chain_holds(
    roled: RoledDatabase, redis_url: str, prefix: str
) -> None:
    services = build_services(settings_for(roled.app_url, redis_url, prefix, allow_owner=False), app=True)
    try:
        with services.db.read() as conn:
            user_id = conn.execute(text("SELECT min(id) FROM users WHERE status = 'active'")).scalar_one()
        suspended = services.users.suspend(actor(Role.SUPPORT), UserStatusChange(user_id=user_id, reason="abuse 9"))
        assert suspended.status is UserStatus.SUSPENDED
        # A rollup rebuild truncates the rollups: the one truncate the app role may do.
        rebuilt = RollupMaintenance(roled.app_url, services.audit).rebuild(actor(Role.ADMIN), RollupRebuild())
        assert rebuilt > 0
        assert services.audit_upkeep.run_once().head_id is not None
        assert services.audit.verify().first_break is None
        actions = {record.action for record in services.audit.search(AUDITOR, limit=20)}
        assert {"user.suspend", "rollups.rebuild"} <= actions
    finally:
        services.close()


def test_the_dashboard_refuses_to_connect_as_the_owner_unless_allowed(
    roled: RoledDatabase, redis_url: str, prefix: str
) -> None:
    refused = build_services(settings_for(roled.owner_url, redis_url, prefix, allow_owner=False), app=True)
    try:
        with pytest.raises(UnsafeConfiguration, match=r"superuser.*krowoc-admin db roles"), refused.db.read():
            pass
    finally:
        refused.close()
    allowed = build_services(settings_for(roled.owner_url, redis_url, prefix, allow_owner=True), app=True)
    try:
        with allowed.db.read() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        allowed.close()


def test_a_member_of_the_owner_role_is_refused_too(roled: RoledDatabase) -> None:
    with psycopg.connect(libpq_url(roled.owner_url), autocommit=True) as conn:
        owner = conn.execute("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = 'audit_log'::regclass")
        conn.execute(f"GRANT {owner.fetchone()[0]} TO {roled.app}")  # type: ignore[index]
    with psycopg.connect(roled.app_url) as conn:
        privilege = roles.privilege_of(conn)
    assert privilege.owner and privilege.privileged


def test_db_roles_command_is_idempotent_and_names_what_it_did(
    make_database: Callable[..., str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = make_database()
    tag = uuid.uuid4().hex[:10]
    app, readonly = f"krowoc_app_{tag}", f"krowoc_ro_{tag}"
    monkeypatch.setenv("KROWOC_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        argv = ["db", "roles", "--app-role", app, "--readonly-role", readonly]
        assert main(argv) == 0
        assert f"created {app}, {readonly}" in capsys.readouterr().out
        assert main(argv) == 0
        assert "created" not in capsys.readouterr().out
        assert main(["db", "roles", "--app-role", "Robert'); DROP TABLE users;--"]) == 2
        assert "lower-case letters" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {app}, {readonly}")
            conn.execute(f"DROP ROLE {app}")
            conn.execute(f"DROP ROLE {readonly}")


def test_roles_are_refused_on_a_database_without_the_schema(make_database: Callable[..., str]) -> None:
    engine = make_engine(make_database(empty=True), pool_size=1)
    try:
        with engine.begin() as conn, pytest.raises(InvalidInput, match="krowoc-admin migrate"):
            roles.apply_roles(conn, app="krowoc_app_never", readonly="krowoc_ro_never")
        with engine.begin() as conn:
            assert conn.execute(text("SELECT count(*) FROM pg_roles WHERE rolname LIKE '%never'")).scalar_one() == 0
    finally:
        engine.dispose()


@pytest.mark.parametrize("page", ["overview.py", "executions.py", "audit_log.py"])
def test_the_dashboard_runs_as_the_app_role_and_says_what_to_change_as_the_owner(
    roled: RoledDatabase, redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch, page: str
) -> None:
    monkeypatch.setenv("KROWOC_ALLOW_OWNER", "false")
    point_dashboard_at(monkeypatch, roled.owner_url, redis_url, prefix)
    try:
        refused = errors(open_page(page, Role.ADMIN))
        assert any("krowoc-admin db roles" in message for message in refused), refused
        point_dashboard_at(monkeypatch, roled.app_url, redis_url, prefix)
        assert errors(open_page(page, Role.ADMIN)) == []
    finally:
        get_settings.cache_clear()


def test_the_embedded_default_migrates_then_runs_the_dashboard_as_the_app_role(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with private_servers(tmp_path) as private:
        settings = private.stack.settings
        for name in ("KROWOC_DATABASE_URL", "KROWOC_REDIS_URL", "KROWOC_DATABASE_OWNER_URL"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("KROWOC_STATE_DIR", str(settings.state_dir))
        monkeypatch.setenv("KROWOC_EMBEDDED_POSTGRES_PORT", str(settings.embedded_postgres_port))
        monkeypatch.setenv("KROWOC_EMBEDDED_REDIS_PORT", str(settings.embedded_redis_port))
        monkeypatch.setenv("KROWOC_ALLOW_OWNER", "false")
        get_settings.cache_clear()
        try:
            assert main(["migrate"]) == 0
            assert "Roles granted: krowoc_app" in capsys.readouterr().out
            embedded = get_settings()
            services = build_services(embedded, app=True)
            try:
                assert services.endpoints.database_url.startswith("postgresql://krowoc_app@")
                with services.db.read() as conn:
                    assert conn.execute(text("SELECT current_user")).scalar_one() == "krowoc_app"
                assert services.audit_upkeep.run_once().head_id is None  # an empty log, read as the app role
            finally:
                services.close()
        finally:
            get_settings.cache_clear()
