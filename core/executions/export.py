"""Exporting executions as CSV: who may, how many, one at a time, and the audit row that says so.

The SQL that writes the CSV lives with the other execution reads (``queries.executions``); this
holds the rules every caller goes through:

- support and admins only (``Permission.EXPORT_EXECUTIONS``), a denied attempt recorded;
- at most ``max_rows`` executions (``KROWOC_EXPORT_MAX_ROWS``, default 200,000): a wider search is
  refused before a byte is written, and recorded as invalid, so it can be narrowed;
- one export at a time per person, across every dashboard instance (a Redis key, else a lock of
  this process when Redis is away);
- the intent is recorded before the first row is read and the outcome names how many rows and
  bytes were written, with the search's filters.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import BinaryIO

import redis
from sqlalchemy import Connection

from core.adapters.db import Database
from core.adapters.redis import RedisClient
from core.audit import AuditLog
from core.domain.actions import AdminAction
from core.domain.exceptions import InvalidInput
from core.domain.models import Actor
from core.domain.rbac import Permission

log = logging.getLogger(__name__)

EXPORT_MAX_ROWS = 200_000
EXPORT_READ_TIMEOUT_MS = 600_000
EXPORT_LOCK_SECONDS = 3600
"""How long one person's export lock is held at most (a crashed export frees it then)."""


@dataclass(frozen=True)
class ExportReport:
    """What one export wrote."""

    rows: int
    bytes: int


class ExportBusy(InvalidInput):
    """The person already has an export running."""


class ExecutionExports:
    """Runs CSV exports of executions under the export rules, writing them to a sink the caller gives."""

    def __init__(
        self, db: Database, audit: AuditLog, client: RedisClient, prefix: str, *, max_rows: int = EXPORT_MAX_ROWS
    ) -> None:
        self.db = db
        self.audit = audit
        self.client = client
        self.prefix = prefix
        self.max_rows = max_rows
        self._local: set[str] = set()
        self._local_lock = threading.Lock()

    def lock_key(self, actor: Actor) -> str:
        """Return the key that marks a person's running export."""
        return f"{self.prefix}export-running:{actor.id}"

    def export(
        self,
        actor: Actor,
        *,
        filters: Mapping[str, str],
        count: Callable[[Connection, int], int],
        chunks: Callable[[Connection, int], Iterable[tuple[bytes, int]]],
        sink: BinaryIO,
        on_progress: Callable[[int, int], None] = lambda _done, _total: None,
    ) -> ExportReport:
        """Write the executions a search matches to ``sink`` as CSV; return how much was written.

        ``count(conn, cap)`` counts the matches up to ``cap`` + 1; ``chunks(conn, cap)`` yields the
        CSV in pieces with the rows each holds. ``on_progress(done, total)`` follows the rows.
        """
        summary = " ".join(f"{name}={value}" for name, value in filters.items())
        total = 0
        held = False

        def check() -> None:
            nonlocal total, held
            with self.db.read(timeout_ms=EXPORT_READ_TIMEOUT_MS) as conn:
                total = count(conn, self.max_rows)
            if total > self.max_rows:
                raise InvalidInput(
                    f"This search matches more than {self.max_rows:,} executions, the most one export writes: "
                    "narrow it (a shorter range, one user, one status) and export again."
                )
            held = self._acquire(actor)

        try:
            with self.audit.action(
                actor,
                AdminAction.EXECUTIONS_EXPORT,
                permission=Permission.EXPORT_EXECUTIONS,
                target_type="executions",
                target_id=summary or "all",
                reason_required=False,
                check=check,
                # The file is written outside the audit transaction: its intent is recorded first.
                external=True,
                timeout_seconds=None,
            ) as action:
                rows = size = 0
                with self.db.read(timeout_ms=EXPORT_READ_TIMEOUT_MS) as conn:
                    for data, count_in_chunk in chunks(conn, self.max_rows):
                        sink.write(data)
                        rows += count_in_chunk
                        size += len(data)
                        on_progress(rows, total)
                action.after = {"filters": dict(filters), "rows": rows, "bytes": size}
        finally:
            if held:
                self._release(actor)
        return ExportReport(rows=rows, bytes=size)

    def _acquire(self, actor: Actor) -> bool:
        busy = ExportBusy("An export of yours is still being written: wait for it to finish, then export again.")
        try:
            if not self.client.set(self.lock_key(actor), "1", nx=True, ex=EXPORT_LOCK_SECONDS):
                raise busy
        except redis.RedisError as exc:
            log.warning("export lock in Redis unavailable, locking in this process: %s", exc.__class__.__name__)
            with self._local_lock:
                if actor.id in self._local:
                    raise busy from None
                self._local.add(actor.id)
        return True

    def _release(self, actor: Actor) -> None:
        with self._local_lock:
            if actor.id in self._local:
                self._local.discard(actor.id)
                return
        try:
            self.client.delete(self.lock_key(actor))
        except redis.RedisError as exc:
            log.warning("export lock not released (it expires by itself): %s", exc.__class__.__name__)
