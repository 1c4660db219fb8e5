"""Engines, sessions and read routing: writes and audit go to the primary, reads to a replica."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from core.domain.exceptions import DatabaseUnavailable

log = logging.getLogger(__name__)

UNREACHABLE = "PostgreSQL is unreachable; check the database server."
NO_ANSWER = (
    "PostgreSQL did not answer this query (it timed out or the connection dropped). "
    "Try again, or pick a shorter time range."
)


def normalize_url(url: str) -> str:
    """Make a PostgreSQL URL use the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def libpq_url(url: str) -> str:
    """Make a PostgreSQL URL plain libpq (what psycopg.connect takes), whatever driver it names."""
    return normalize_url(url).replace("postgresql+psycopg://", "postgresql://")


def make_engine(url: str, *, pool_size: int = 5, application_name: str = "krowoc-admin") -> Engine:
    """Build a pooled engine that checks connections before use.

    Statements are never prepared server-side (``prepare_threshold=None``): the dashboard's reads
    take a time range whose width changes the best plan by orders of magnitude, and once psycopg
    prepares a statement (after five runs) PostgreSQL may switch it to one generic plan for every
    range. At 10 million executions that made the top errors of 30 days take 45-70 ms instead of
    20 ms. Unprepared, each read is planned for its own range, and the engine also works behind a
    transaction-pooling PgBouncer.
    """
    return create_engine(
        normalize_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"connect_timeout": 5, "application_name": application_name, "prepare_threshold": None},
    )


class Database:
    """The primary and an optional read replica.

    ``read()`` opens a read-only transaction with a statement timeout on the replica when there is
    one and it answers; otherwise on the primary. A replica that fails is skipped for
    ``replica_retry_seconds`` before it is tried again.
    """

    def __init__(
        self,
        primary: Engine,
        replica: Engine | None = None,
        *,
        statement_timeout_ms: int = 5000,
        replica_retry_seconds: float = 30.0,
    ) -> None:
        self.primary = primary
        self.replica = replica
        self.statement_timeout_ms = statement_timeout_ms
        self.replica_retry_seconds = replica_retry_seconds
        self._replica_down_until = 0.0
        self._lock = threading.Lock()
        self.sessions = sessionmaker(bind=primary, expire_on_commit=False)

    @classmethod
    def from_urls(
        cls,
        primary_url: str,
        replica_url: str | None = None,
        *,
        pool_size: int = 5,
        statement_timeout_ms: int = 5000,
        replica_retry_seconds: float = 30.0,
    ) -> Database:
        """Build the engines for a primary and an optional replica."""
        primary = make_engine(primary_url, pool_size=pool_size)
        replica = make_engine(replica_url, pool_size=pool_size) if replica_url else None
        return cls(
            primary,
            replica,
            statement_timeout_ms=statement_timeout_ms,
            replica_retry_seconds=replica_retry_seconds,
        )

    @property
    def replica_healthy(self) -> bool:
        return self.replica is not None and time.monotonic() >= self._replica_down_until

    def _connect_for_read(self) -> Connection:
        if self.replica is not None and self.replica_healthy:
            try:
                return self.replica.connect()
            except (OperationalError, DBAPIError) as exc:
                log.warning("read replica unavailable, reading from the primary: %s", exc.__class__.__name__)
                with self._lock:
                    self._replica_down_until = time.monotonic() + self.replica_retry_seconds
        try:
            return self.primary.connect()
        except (OperationalError, DBAPIError) as exc:
            raise DatabaseUnavailable(UNREACHABLE) from exc

    @contextmanager
    def read(self, *, timeout_ms: int | None = None) -> Iterator[Connection]:
        """Open a read-only transaction with a statement timeout, on the replica when it answers.

        A query that times out or loses its connection raises ``DatabaseUnavailable``.
        """
        conn = self._connect_for_read()
        try:
            with conn.begin():
                ms = int(timeout_ms or self.statement_timeout_ms)
                conn.execute(text(f"SET TRANSACTION READ ONLY; SET LOCAL statement_timeout = {ms}"))
                yield conn
        except OperationalError as exc:
            log.warning("read failed: %s", exc.orig.__class__.__name__ if exc.orig else exc.__class__.__name__)
            raise DatabaseUnavailable(NO_ANSWER) from exc
        finally:
            conn.close()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """Open a transaction on the primary; it commits when the block ends without error."""
        try:
            conn = self.primary.connect()
        except (OperationalError, DBAPIError) as exc:
            raise DatabaseUnavailable(UNREACHABLE) from exc
        try:
            with conn.begin():
                yield conn
        finally:
            conn.close()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Open an ORM session on the primary in one transaction."""
        try:
            with self.sessions.begin() as session:
                yield session
        except OperationalError as exc:
            if exc.connection_invalidated or "connect" in str(exc).lower():
                raise DatabaseUnavailable(UNREACHABLE) from exc
            raise

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.primary.dispose()
        if self.replica is not None:
            self.replica.dispose()
