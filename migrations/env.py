"""Alembic environment on the same metadata as ``core.adapters.tables``.

A caller may hand Alembic its own connection in ``config.attributes["connection"]``, as the
Alembic cookbook and the common migration-test tools do: a ``Connection`` is used as it is (its
caller owns the transaction around it), an ``Engine`` is connected to here and disposed of by
its owner.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, Engine, create_engine, pool

from core.adapters.db import normalize_url
from core.adapters.migrate import include_name
from core.adapters.tables import metadata
from core.config import get_settings
from core.endpoints import resolve_endpoints

config = context.config


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_name=include_name,
        compare_type=True,
        compare_server_default=True,
        transaction_per_migration=True,
    )


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if isinstance(connection, Engine):
        with connection.connect() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
        return
    if isinstance(connection, Connection):
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    if connection is not None:
        raise TypeError(f"config.attributes['connection'] must be a Connection or an Engine, not {type(connection)!r}")
    url = config.get_main_option("sqlalchemy.url") or resolve_endpoints(get_settings()).database_owner_url
    engine = create_engine(normalize_url(url), poolclass=pool.NullPool)
    with engine.connect() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("Offline SQL generation is not supported; run against a database.")
run_migrations_online()
