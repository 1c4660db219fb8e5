"""Engines and read routing: read-only reads with a statement timeout, a replica with fallback."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, OperationalError

from core.adapters.db import Database, normalize_url
from core.domain.exceptions import DatabaseUnavailable

# Nothing listens on port 1: connecting is refused at once.
CLOSED = "postgresql://postgres@127.0.0.1:1/krowoc"


@pytest.fixture()
def open_database() -> Iterator[Callable[..., Database]]:
    """Build Database objects and disposes their pools after the test."""
    built: list[Database] = []

    def make(primary: str, replica: str | None = None, **options: float) -> Database:
        db = Database.from_urls(primary, replica, pool_size=2, **options)  # type: ignore[arg-type]
        built.append(db)
        return db

    yield make
    for db in built:
        db.dispose()


def _name(url: str) -> str:
    return normalize_url(url).rsplit("/", 1)[1]


@pytest.fixture()
def primary_url(make_database: Callable[..., str]) -> str:
    return make_database()


@pytest.fixture()
def replica_url(make_database: Callable[..., str]) -> str:
    """Another database on the same server, standing in for a replica; it holds a marker table."""
    url = make_database(empty=True)
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute("CREATE TABLE replica_marker (said text)")
        conn.execute("INSERT INTO replica_marker VALUES ('served by the replica')")
    return url


def test_read_is_read_only(open_database: Callable[..., Database], primary_url: str) -> None:
    db = open_database(primary_url)
    with pytest.raises(DBAPIError) as caught, db.read() as conn:
        conn.execute(text("INSERT INTO users (id, email, display_name, tier) VALUES (1, 'a@b.c', 'A', 'free')"))
    assert caught.value.orig is not None
    assert caught.value.orig.sqlstate == "25006"  # type: ignore[attr-defined]  # read_only_sql_transaction
    with db.write() as conn:
        assert conn.execute(text("SELECT count(*) FROM users")).scalar_one() == 0


def test_read_has_the_statement_timeout(open_database: Callable[..., Database], primary_url: str) -> None:
    db = open_database(primary_url, statement_timeout_ms=1500)
    with db.write() as conn:
        baseline = conn.execute(text("SHOW statement_timeout")).scalar_one()
    with db.read() as conn:
        assert conn.execute(text("SHOW statement_timeout")).scalar_one() == "1500ms"
        assert conn.execute(text("SHOW transaction_read_only")).scalar_one() == "on"
    with db.read(timeout_ms=250) as conn:
        assert conn.execute(text("SHOW statement_timeout")).scalar_one() == "250ms"
    # SET LOCAL ends with the transaction: pooled connections come back as they were, and writable.
    with db.write() as conn:
        assert conn.execute(text("SHOW statement_timeout")).scalar_one() == baseline
        assert conn.execute(text("SHOW transaction_read_only")).scalar_one() == "off"
        conn.execute(text("INSERT INTO users (id, email, display_name, tier) VALUES (1, 'a@b.c', 'A', 'free')"))


def test_a_query_beyond_the_timeout_is_cancelled(open_database: Callable[..., Database], primary_url: str) -> None:
    db = open_database(primary_url)
    with pytest.raises(DatabaseUnavailable, match="did not answer") as caught, db.read(timeout_ms=200) as conn:
        conn.execute(text("SELECT pg_sleep(30)"))
    # The adapter says it in the domain's words, and keeps the driver's error as the cause.
    cause = caught.value.__cause__
    assert isinstance(cause, OperationalError) and cause.orig is not None
    assert cause.orig.sqlstate == "57014"  # type: ignore[attr-defined]  # query_canceled
    assert "statement timeout" in str(cause.orig)
    with db.read() as conn:  # the pool recovers
        assert conn.execute(text("SELECT 1")).scalar_one() == 1


def test_reads_go_to_the_replica_and_writes_to_the_primary(
    open_database: Callable[..., Database], primary_url: str, replica_url: str
) -> None:
    db = open_database(primary_url, replica_url)
    with db.read() as conn:
        assert conn.execute(text("SELECT current_database()")).scalar_one() == _name(replica_url)
        assert conn.execute(text("SELECT said FROM replica_marker")).scalar_one() == "served by the replica"
    with db.write() as conn:
        assert conn.execute(text("SELECT current_database()")).scalar_one() == _name(primary_url)
        assert conn.execute(text("SELECT to_regclass('replica_marker')")).scalar_one() is None
    with db.session() as session:
        assert session.execute(text("SELECT current_database()")).scalar_one() == _name(primary_url)
    assert db.replica_healthy


def test_without_a_replica_reads_use_the_primary(open_database: Callable[..., Database], primary_url: str) -> None:
    db = open_database(primary_url)
    with db.read() as conn:
        assert conn.execute(text("SELECT current_database()")).scalar_one() == _name(primary_url)
    assert not db.replica_healthy


def test_a_dead_replica_falls_back_to_the_primary(open_database: Callable[..., Database], primary_url: str) -> None:
    db = open_database(primary_url, CLOSED, replica_retry_seconds=3600)
    assert db.replica is not None
    attempts: list[int] = []
    event.listen(db.replica, "do_connect", lambda *args: attempts.append(1))
    assert db.replica_healthy  # not known to be down before the first read
    with db.read() as conn:
        assert conn.execute(text("SELECT current_database()")).scalar_one() == _name(primary_url)
    assert not db.replica_healthy
    # Within the retry interval the replica is not tried again.
    with db.read() as conn:
        assert conn.execute(text("SELECT current_database()")).scalar_one() == _name(primary_url)
    assert len(attempts) == 1


def test_a_dead_replica_is_tried_again_after_the_retry_interval(
    open_database: Callable[..., Database], primary_url: str
) -> None:
    db = open_database(primary_url, CLOSED, replica_retry_seconds=0)
    assert db.replica is not None
    attempts: list[int] = []
    event.listen(db.replica, "do_connect", lambda *args: attempts.append(1))
    for _ in range(2):
        with db.read() as conn:
            assert conn.execute(text("SELECT current_database()")).scalar_one() == _name(primary_url)
    assert len(attempts) == 2


def test_reads_keep_working_from_the_replica_when_the_primary_is_down(
    open_database: Callable[..., Database], replica_url: str
) -> None:
    db = open_database(CLOSED, replica_url)
    with db.read() as conn:
        assert conn.execute(text("SELECT said FROM replica_marker")).scalar_one() == "served by the replica"
    with pytest.raises(DatabaseUnavailable), db.write():
        pass


def test_unreachable_primary_raises_database_unavailable(open_database: Callable[..., Database]) -> None:
    db = open_database(CLOSED)
    with pytest.raises(DatabaseUnavailable, match="PostgreSQL is unreachable") as caught, db.read():
        pass
    assert isinstance(caught.value.__cause__, OperationalError)
    with pytest.raises(DatabaseUnavailable), db.write():
        pass


def test_unreachable_primary_and_replica_raise_database_unavailable(
    open_database: Callable[..., Database],
) -> None:
    db = open_database(CLOSED, "postgresql://postgres@127.0.0.1:1/replica")
    with pytest.raises(DatabaseUnavailable), db.read():
        pass
    assert not db.replica_healthy


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u@h:5432/d", "postgresql+psycopg://u@h:5432/d"),
        ("postgres://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
    ],
)
def test_urls_use_psycopg_3(given: str, expected: str) -> None:
    assert normalize_url(given) == expected
