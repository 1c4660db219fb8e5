"""Least-privilege database roles: who may rewrite the audit log, and a dashboard that refuses to be them.

Three roles share the schema:

- the **owner** (the role that runs ``krowoc-admin migrate``) owns every table, so it alone can
  alter ``audit_log``, disable its append-only trigger, or truncate it;
- the **app** role, which the dashboard and the API connect as, may read and change the app's
  tables, truncate the rollups it rebuilds, and only INSERT and SELECT on ``audit_log``;
- the **read-only** role, for the replica, may only SELECT.

``apply_roles`` creates the two login roles when they are missing and (re)applies their grants;
it is idempotent, and default privileges give the tables a later migration creates the same
grants. ``refuse_privileged`` makes an engine refuse every connection made as a superuser or as
the owner (a member of the role that owns ``audit_log``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, event, text

from core.domain.exceptions import InvalidInput, UnsafeConfiguration

APP_ROLE = "krowoc_app"
READONLY_ROLE = "krowoc_readonly"
ROLLUP_TABLES = ("execution_rollup_minute", "execution_rollup_hour", "execution_latency_hour", "execution_error_hour")
"""The tables a rollup rebuild truncates: the only ones the app role may truncate."""

APPEND_ONLY = "audit_log"
SCHEMA_VERSION_TABLE = "alembic_version"

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


@dataclass(frozen=True)
class RolesReport:
    """What ``apply_roles`` did."""

    owner: str
    created: tuple[str, ...]
    app: str
    readonly: str
    tables: int


@dataclass(frozen=True)
class ConnectionPrivilege:
    """Who a connection is, and whether it could rewrite the audit log."""

    user: str
    superuser: bool
    owner: bool

    @property
    def privileged(self) -> bool:
        """Whether this connection could alter, rewrite or empty ``audit_log``."""
        return self.superuser or self.owner


def role_name(name: str) -> str:
    """Return ``name`` when it is a plain lower-case PostgreSQL identifier; else raise ``InvalidInput``."""
    if not _IDENTIFIER.fullmatch(name):
        raise InvalidInput(f"a role name is lower-case letters, digits and _ (at most 63), not {name!r}")
    return name


def password_verifier(conn: Connection, role: str, password: str) -> str:
    """Return the SCRAM-SHA-256 verifier libpq computes for ``role``: the password itself is never sent."""
    pgconn = conn.connection.driver_connection.pgconn  # type: ignore[union-attr]
    return bytes(pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")).decode()


def apply_roles(
    conn: Connection,
    *,
    app: str = APP_ROLE,
    readonly: str = READONLY_ROLE,
    app_password: str | None = None,
    readonly_password: str | None = None,
) -> RolesReport:
    """Create the app and read-only roles when missing, set their passwords when given, and grant them.

    Runs as the owner of the schema (it grants on the owner's tables); creating a role needs
    CREATEROLE, which a database administrator may do instead (then this only grants).
    """
    app, readonly = role_name(app), role_name(readonly)
    if app == readonly:
        raise InvalidInput("the app and the read-only role must be two roles")
    owner = conn.execute(text("SELECT current_user")).scalar_one()
    if owner in (app, readonly):
        raise InvalidInput(f"run this as the owner of the schema, not as {owner}")
    table_owner = conn.execute(
        text("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = to_regclass(:table)"), {"table": APPEND_ONLY}
    ).scalar()
    if table_owner is None:
        raise InvalidInput("the schema is not there: run `krowoc-admin migrate` first")
    if table_owner != owner:
        raise InvalidInput(f"run this as {table_owner}, the owner of the schema, not as {owner}")
    created = []
    for role, password in ((app, app_password), (readonly, readonly_password)):
        exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role}).scalar()
        if not exists:
            conn.execute(text(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT"))
            created.append(role)
        if password:
            # The verifier, not the password, reaches the server (and any statement log).
            # No bind parameters here: the verifier's colons are literal.
            conn.exec_driver_sql(f"ALTER ROLE {role} PASSWORD '{password_verifier(conn, role, password)}'")
    database = conn.execute(text("SELECT current_database()")).scalar_one()
    quoted_db = '"' + database.replace('"', '""') + '"'
    tables = conn.execute(
        text(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')"
        )
    ).scalar_one()
    for statement in (
        f"GRANT CONNECT, TEMPORARY ON DATABASE {quoted_db} TO {app}",
        f"GRANT CONNECT ON DATABASE {quoted_db} TO {readonly}",
        f"GRANT USAGE ON SCHEMA public TO {app}, {readonly}",
        f"REVOKE CREATE ON SCHEMA public FROM {app}, {readonly}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {app}",
        f"GRANT TRUNCATE ON {', '.join(ROLLUP_TABLES)} TO {app}",
        f"REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON {APPEND_ONLY} FROM {app}",
        f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {SCHEMA_VERSION_TABLE} FROM {app}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {app}",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {readonly}",
        # Tables a later migration creates (a new month's partition too) get the same grants.
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {app}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {readonly}",
    ):
        conn.execute(text(statement))
    return RolesReport(owner=owner, created=tuple(created), app=app, readonly=readonly, tables=int(tables))


PRIVILEGE_QUERY = """
SELECT current_user, r.rolsuper,
       coalesce(pg_has_role(current_user, c.relowner, 'MEMBER'), false)
FROM pg_roles r LEFT JOIN pg_class c ON c.oid = to_regclass('audit_log')
WHERE r.rolname = current_user
"""


def privilege_of(dbapi_connection: Any) -> ConnectionPrivilege:
    """Return who a raw (DB-API) connection is and whether it could rewrite the audit log."""
    with dbapi_connection.cursor() as cursor:
        cursor.execute(PRIVILEGE_QUERY)
        user, superuser, owner = cursor.fetchone()
    dbapi_connection.rollback()
    return ConnectionPrivilege(user=str(user), superuser=bool(superuser), owner=bool(owner))


def refuse_privileged(engine: Engine) -> None:
    """Make ``engine`` refuse every connection made as a superuser or as the owner of ``audit_log``."""

    @event.listens_for(engine, "connect")
    def _check(dbapi_connection: Any, _record: Any) -> None:
        privilege = privilege_of(dbapi_connection)
        if privilege.privileged:
            dbapi_connection.close()
            what = "a superuser" if privilege.superuser else "the owner of audit_log"
            raise UnsafeConfiguration(
                f"the dashboard connects to PostgreSQL as {privilege.user}, {what}, who could rewrite or "
                "empty the audit log: run `krowoc-admin db roles` and point KROWOC_DATABASE_URL at the app "
                "role (krowoc_app), or set KROWOC_ALLOW_OWNER=true to accept it"
            )
