"""Helpers for the migration tests: short-lived engines on the per-test databases."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, create_engine, pool

from core.adapters.db import normalize_url


@pytest.fixture()
def engine_for() -> Iterator[Callable[[str], Engine]]:
    """Build engines without a pool (no idle connection holds a lock during DDL) and disposes them."""
    engines: list[Engine] = []

    def make(url: str) -> Engine:
        engine = create_engine(normalize_url(url), poolclass=pool.NullPool)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.dispose()


@pytest.fixture()
def migrated_engine(make_database: Callable[..., str], engine_for: Callable[[str], Engine]) -> Engine:
    """Return an engine on a fresh database migrated to head."""
    return engine_for(make_database())
