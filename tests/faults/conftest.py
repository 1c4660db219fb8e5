"""The fault tests' servers: a PostgreSQL and a Valkey of their own, started once for the group."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from core.adapters.db import libpq_url
from tests.support.faults import PrivateServers, private_servers

TIMEOUTS = {
    "statement_timeout_ms": 1000,
    "query_grace_seconds": 1,
    "write_timeout_seconds": 3,
    "pool_timeout_seconds": 2,
    "connect_timeout_seconds": 2,
}
"""The fault tests' deadlines (short, so a frozen server is given up on quickly)."""


@pytest.fixture(scope="session")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateServers]:
    """Start the private PostgreSQL (migrated, with user 1) and Valkey; stop them when the group ends."""
    with private_servers(tmp_path_factory.mktemp("faults")) as started:
        with psycopg.connect(libpq_url(started.database_url)) as conn:
            conn.execute(
                "INSERT INTO users (id, email, display_name, tier, status) "
                "VALUES (1, 'one@faults.test', 'One', 'free', 'active')"
            )
        yield started
