"""``migrations/env.py`` runs on a connection handed to it, as a Connection or an Engine, as test tools pass one."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from alembic import command
from sqlalchemy import Engine, text

from core.adapters import migrate


def _revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()


def test_an_engine_in_the_attributes_is_migrated(
    make_database: Callable[..., str], engine_for: Callable[[str], Engine]
) -> None:
    engine = engine_for(make_database(empty=True))
    config = migrate.alembic_config()  # no URL: only the handed engine can be used
    config.attributes["connection"] = engine
    command.upgrade(config, "head")
    assert _revision(engine) == migrate.heads()[0]


def test_a_connection_in_the_attributes_is_migrated_in_its_callers_transaction(
    make_database: Callable[..., str], engine_for: Callable[[str], Engine]
) -> None:
    engine = engine_for(make_database(empty=True))
    with engine.begin() as conn:
        config = migrate.alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    assert _revision(engine) == migrate.heads()[0]


def test_anything_else_in_the_attributes_is_refused_by_name() -> None:
    config = migrate.alembic_config()
    config.attributes["connection"] = "postgresql://nowhere"
    with pytest.raises(TypeError, match="a Connection or an Engine"):
        command.upgrade(config, "head")
