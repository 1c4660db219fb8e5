"""The audit log's upkeep: close intents left without an outcome, and publish the chain's head.

``AuditUpkeep.run_once`` appends ``unknown`` for every intent older than the log's ``reap_after``
that has no outcome, reads the chain's head and publishes it twice: as metrics
(``krowoc_audit_chain_head_id`` and the hash's first 48 bits, ``krowoc_audit_chain_head_hash48``)
and as an ``audit.head`` line on the admin-events stream. Anyone who keeps those (Prometheus does,
the stream keeps its last 10,000 lines) can tell a later rewrite of the log by its owner: the head
at a past moment no longer matches the chain ``audit verify`` recomputes. A dashboard process runs
it every minute on a thread of its own; ``krowoc-admin audit reap`` runs it once.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from core.adapters import telemetry
from core.audit.log import AuditLog, EventPublisher
from core.domain.exceptions import DependencyUnavailable

log = logging.getLogger(__name__)

HEAD_EVENT = "audit.head"
EVERY_SECONDS = 60.0


@dataclass(frozen=True)
class UpkeepReport:
    """What one round did: intents closed as unknown, and the head it published."""

    reaped: int
    head_id: int | None
    head_hash: str | None
    unknown: int
    waiting: int


class AuditUpkeep:
    """Reaps stale intents and publishes the chain's head, once or every ``every_seconds`` on a thread."""

    def __init__(self, audit: AuditLog, events: EventPublisher, *, every_seconds: float = EVERY_SECONDS) -> None:
        self.audit = audit
        self.events = events
        self.every_seconds = every_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run_once(self) -> UpkeepReport:
        """Close stale intents as unknown, then publish the head and the count of unresolved intents."""
        reaped = self.audit.reap()
        head = self.audit.head()
        unknown, waiting = self.audit.unresolved()
        telemetry.AUDIT_UNRESOLVED.labels("unknown").set(unknown)
        telemetry.AUDIT_UNRESOLVED.labels("waiting").set(waiting)
        if head is not None:
            head_id, head_hash = head
            telemetry.AUDIT_CHAIN_HEAD_ID.set(head_id)
            telemetry.AUDIT_CHAIN_HEAD_HASH48.set(int(head_hash[:12], 16))
            self.events.publish(HEAD_EVENT, {"id": head_id, "hash": head_hash})
        return UpkeepReport(
            reaped=reaped,
            head_id=head[0] if head else None,
            head_hash=head[1] if head else None,
            unknown=unknown,
            waiting=waiting,
        )

    def start(self) -> None:
        """Run a round every ``every_seconds`` on a daemon thread (once per instance)."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="audit-upkeep", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except DependencyUnavailable as exc:
                log.info("audit upkeep skipped: %s", exc)
            except Exception:
                log.exception("audit upkeep failed")
            self._stop.wait(self.every_seconds)

    def stop(self) -> None:
        """Stop the thread (a round in progress ends first)."""
        with self._lock:
            thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join(timeout=10)
