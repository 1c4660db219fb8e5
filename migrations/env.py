"""Alembic environment on the same metadata as ``core.tables``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from core.config import get_settings
from core.db import normalize_url
from core.migrate import include_name
from core.stack import resolve_urls
from core.tables import metadata

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
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.get_main_option("sqlalchemy.url") or resolve_urls(get_settings()).database_url
    engine = create_engine(normalize_url(url), poolclass=pool.NullPool)
    with engine.connect() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("Offline SQL generation is not supported; run against a database.")
run_migrations_online()
