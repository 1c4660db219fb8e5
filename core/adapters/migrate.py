"""Runs Alembic from code (CLI, tests, demo) and tells model/DDL drift."""

from __future__ import annotations

import re
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, pool

from core.adapters.db import normalize_url
from core.adapters.tables import EXECUTION_PARTITION_PREFIX, metadata
from core.config import PROJECT_ROOT

_PARTITION = re.compile(rf"^{EXECUTION_PARTITION_PREFIX}\d{{6}}$")


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Leaves the monthly partitions (made by ``krowoc-admin partitions ensure``) out of comparisons."""
    return not (type_ == "table" and name is not None and _PARTITION.match(name))


def alembic_config(url: str | None = None) -> Config:
    """Build the Alembic config of this project, optionally bound to a database URL."""
    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    if url:
        cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Migrates the database at ``url`` up to ``revision``."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Migrates the database at ``url`` down to ``revision``."""
    command.downgrade(alembic_config(url), revision)


def heads() -> list[str]:
    """Return the head revisions of the migration scripts."""
    return list(ScriptDirectory.from_config(alembic_config()).get_heads())


def current_revision(url: str) -> str | None:
    """Return the revision the database at ``url`` is on, or ``None`` before the first migration."""
    engine = create_engine(normalize_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def schema_drift(conn: Connection) -> list[Any]:
    """Return the differences between the models in ``core.adapters.tables`` and the live schema."""
    context = MigrationContext.configure(
        conn,
        opts={"include_name": include_name, "compare_type": True, "compare_server_default": True},
    )
    return list(compare_metadata(context, metadata))
