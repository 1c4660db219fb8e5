"""Engines, sessions and read routing: writes and audit go to the primary, reads to a replica."""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from core.adapters.roles import refuse_privileged
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


def make_engine(
    url: str,
    *,
    pool_size: int = 5,
    pool_timeout_seconds: float = 5.0,
    connect_timeout_seconds: int = 5,
    application_name: str = "krowoc-admin",
) -> Engine:
    """Build a pooled engine whose connections give up on a server that stops answering.

    Statements are never prepared server-side (``prepare_threshold=None``): the dashboard's reads
    take a time range whose width changes the best plan by orders of magnitude, and once psycopg
    prepares a statement (after five runs) PostgreSQL may switch it to one generic plan for every
    range. At 10 million executions that made the top errors of 30 days take 45-70 ms instead of
    20 ms. Unprepared, each read is planned for its own range, and the engine also works behind a
    transaction-pooling PgBouncer.

    A new connection gives up after ``connect_timeout``; a connection to a peer that vanished
    (a network partition) is dropped by TCP keepalives and ``tcp_user_timeout``; a checkout waits
    at most ``pool_timeout_seconds`` for a free connection. A server that is alive at the TCP level
    but stopped (a hung disk, a frozen host) still acknowledges every packet, so none of those
    fire: ``Database`` guards each transaction with its own deadline (``Watchdog``). Connections
    are not pinged at checkout (a ping to a frozen server waits forever, outside any deadline): a
    transaction that finds its pooled connection dead at its first statement starts again once on
    a new one.
    """
    return create_engine(
        normalize_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=pool_timeout_seconds,
        pool_pre_ping=False,
        pool_recycle=1800,
        connect_args={
            "connect_timeout": connect_timeout_seconds,
            "application_name": application_name,
            "prepare_threshold": None,
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
            "tcp_user_timeout": 15_000,
        },
    )


class Deadline:
    """A guarded transaction's deadline; ``passed`` once the watchdog cut its connection."""

    passed = False


class Watchdog:
    """Cuts connections whose transaction outlives its deadline by shutting their socket down.

    PostgreSQL's statement timeout is kept by the server, so a server whose processes are stopped
    never applies it, and the client would wait forever on a socket the kernel keeps acknowledging.
    The watchdog's one thread shuts such a socket down at its deadline: the blocked call returns at
    once with an error, SQLAlchemy discards the connection, and the caller reports PostgreSQL down.
    """

    def __init__(self) -> None:
        self._deadlines: list[tuple[float, int, int]] = []  # (deadline, ticket, socket fd)
        self._tickets = itertools.count()
        self._live: dict[int, Deadline] = {}
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self.cut = 0
        """How many connections were cut since the process started."""

    @contextmanager
    def guard(self, conn: Connection, seconds: float | None) -> Iterator[Deadline]:
        """Cut ``conn``'s socket if the block is still running ``seconds`` from now (None: never)."""
        deadline = Deadline()
        fd = _socket_of(conn) if seconds is not None else None
        if seconds is None or fd is None:
            yield deadline
            return
        ticket = next(self._tickets)
        with self._cond:
            heapq.heappush(self._deadlines, (time.monotonic() + seconds, ticket, fd))
            self._live[ticket] = deadline
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="db-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()
        try:
            yield deadline
        finally:
            with self._cond:
                self._live.pop(ticket, None)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._deadlines:
                    self._cond.wait()
                deadline, ticket, fd = self._deadlines[0]
                wait = deadline - time.monotonic()
                if ticket not in self._live:
                    heapq.heappop(self._deadlines)
                    continue
                if wait > 0:
                    self._cond.wait(timeout=wait)
                    continue
                heapq.heappop(self._deadlines)
                self._live.pop(ticket).passed = True
                self.cut += 1
            log.warning("PostgreSQL did not answer within the deadline: cutting the connection")
            _shut_down(fd)


def _socket_of(conn: Connection) -> int | None:
    try:
        dbapi = conn.connection.dbapi_connection
        return int(dbapi.fileno()) if dbapi is not None else None
    except Exception:  # a closed or invalidated connection has no socket to guard
        return None


def _shut_down(fd: int) -> None:
    # Shutting a duplicate of the descriptor down shuts the socket itself down: the libpq call
    # blocked on it sees the connection closed, and the descriptor stays libpq's to close.
    try:
        with socket.socket(fileno=os.dup(fd)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


WATCHDOG = Watchdog()
"""The process's one watchdog (one thread, started on first use)."""


class Database:
    """The primary and an optional read replica.

    ``read()`` opens a read-only transaction with a statement timeout on the replica when there is
    one and it answers; otherwise on the primary. A replica that fails is skipped for
    ``replica_retry_seconds`` before it is tried again. Every transaction has a deadline on the
    client's side too (``Watchdog``): the statement timeout plus ``grace_seconds`` for a read,
    ``write_timeout_seconds`` for a write. Whatever PostgreSQL does, a caller gets an answer or
    ``DatabaseUnavailable`` within that.
    """

    def __init__(
        self,
        primary: Engine,
        replica: Engine | None = None,
        *,
        statement_timeout_ms: int = 5000,
        replica_retry_seconds: float = 30.0,
        grace_seconds: float = 2.0,
        write_timeout_seconds: float = 30.0,
        watchdog: Watchdog = WATCHDOG,
    ) -> None:
        self.primary = primary
        self.replica = replica
        self.statement_timeout_ms = statement_timeout_ms
        self.replica_retry_seconds = replica_retry_seconds
        self.grace_seconds = grace_seconds
        self.write_timeout_seconds = write_timeout_seconds
        self.watchdog = watchdog
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
        pool_timeout_seconds: float = 5.0,
        statement_timeout_ms: int = 5000,
        replica_retry_seconds: float = 30.0,
        grace_seconds: float = 2.0,
        write_timeout_seconds: float = 30.0,
        least_privilege: bool = False,
        connect_timeout_seconds: int = 5,
    ) -> Database:
        """Build the engines for a primary and an optional replica.

        With ``least_privilege`` the primary refuses every connection made as a superuser or as the
        owner of ``audit_log`` (``UnsafeConfiguration``), as the dashboard and the API want.
        """

        def engine(url: str) -> Engine:
            return make_engine(
                url,
                pool_size=pool_size,
                pool_timeout_seconds=pool_timeout_seconds,
                connect_timeout_seconds=connect_timeout_seconds,
            )

        primary = engine(primary_url)
        if least_privilege:
            refuse_privileged(primary)
        replica = engine(replica_url) if replica_url else None
        return cls(
            primary,
            replica,
            statement_timeout_ms=statement_timeout_ms,
            replica_retry_seconds=replica_retry_seconds,
            grace_seconds=grace_seconds,
            write_timeout_seconds=write_timeout_seconds,
        )

    @property
    def replica_healthy(self) -> bool:
        """Whether the replica is configured and not resting after a failure."""
        return self.replica is not None and time.monotonic() >= self._replica_down_until

    def _open(self, engine: Engine, first: str, seconds: float | None) -> tuple[Connection, Any, Any]:
        """Open a transaction on ``engine`` and run ``first`` in it, under a deadline; return its parts.

        A pooled connection found dead at the first statement (the server restarted since) is
        dropped and the transaction starts once more on a new connection.
        """
        for attempt in (1, 2):
            conn = engine.connect()
            guard = self.watchdog.guard(conn, seconds)
            deadline = guard.__enter__()
            try:
                transaction = conn.begin()
                if first:
                    conn.execute(text(first))
            except OperationalError as exc:
                guard.__exit__(None, None, None)
                conn.close()
                # Dead since it was pooled: start again. Cut at its deadline: the server hangs, report it.
                if attempt == 1 and exc.connection_invalidated and not deadline.passed:
                    continue
                raise
            return conn, transaction, guard
        raise AssertionError("unreachable")  # pragma: no cover

    def _open_for_read(self, timeout_ms: int) -> tuple[Connection, Any, Any]:
        first = f"SET TRANSACTION READ ONLY; SET LOCAL statement_timeout = {timeout_ms}"
        seconds = timeout_ms / 1000 + self.grace_seconds
        if self.replica is not None and self.replica_healthy:
            try:
                return self._open(self.replica, first, seconds)
            except (OperationalError, DBAPIError, PoolTimeout) as exc:
                log.warning("read replica unavailable, reading from the primary: %s", exc.__class__.__name__)
                with self._lock:
                    self._replica_down_until = time.monotonic() + self.replica_retry_seconds
        try:
            return self._open(self.primary, first, seconds)
        except (OperationalError, DBAPIError, PoolTimeout) as exc:
            raise DatabaseUnavailable(UNREACHABLE) from exc

    @contextmanager
    def read(self, *, timeout_ms: int | None = None) -> Iterator[Connection]:
        """Open a read-only transaction with a statement timeout, on the replica when it answers.

        A query that times out or loses its connection raises ``DatabaseUnavailable``.
        """
        conn, transaction, guard = self._open_for_read(int(timeout_ms or self.statement_timeout_ms))
        try:
            with transaction:
                yield conn
        except OperationalError as exc:
            log.warning("read failed: %s", exc.orig.__class__.__name__ if exc.orig else exc.__class__.__name__)
            raise DatabaseUnavailable(NO_ANSWER) from exc
        finally:
            guard.__exit__(None, None, None)
            conn.close()

    @contextmanager
    def write(self, *, timeout_seconds: float | None = -1.0) -> Iterator[Connection]:
        """Open a transaction on the primary; it commits when the block ends without error.

        It must end within ``timeout_seconds`` (``write_timeout_seconds`` by default; None: no
        deadline, for a long recompute), else its connection is cut and ``DatabaseUnavailable`` raised.
        """
        seconds = self.write_timeout_seconds if timeout_seconds == -1.0 else timeout_seconds
        try:
            conn, transaction, guard = self._open(self.primary, "", seconds)
        except (OperationalError, DBAPIError, PoolTimeout) as exc:
            raise DatabaseUnavailable(UNREACHABLE) from exc
        try:
            with transaction:
                yield conn
        except OperationalError as exc:
            if exc.connection_invalidated or conn.invalidated:
                raise DatabaseUnavailable(NO_ANSWER) from exc
            raise
        finally:
            guard.__exit__(None, None, None)
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
