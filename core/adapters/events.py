"""Reading the admin-events stream, and the Pub/Sub "something changed" notices.

Admin actions append to the ``{prefix}admin-events`` stream (``RedisEvents``, called by
``AuditLog.action``) and publish a small notice on ``{prefix}changes``. Every dashboard
instance reads the stream through a consumer group of its own (``dashboard-<instance id>``), so
each instance sees every event; on a cache invalidation it drops its in-memory tier. A reader
thread blocks at most ``block_ms`` per read, so an instance lags an invalidation by well under a
second. Notices are fire-and-forget: a page may listen to refresh itself, nothing depends on them.
On a Redis Cluster the stream and its groups are one key on one node, and a notice published on
any node reaches subscribers on every node.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

import redis
from pydantic import BaseModel, ConfigDict

from core.adapters.redis import RedisClient
from core.domain.actions import CACHE_INVALIDATIONS

log = logging.getLogger(__name__)

STREAM = "admin-events"
NOTICES = "changes"
GROUP_PREFIX = "dashboard-"
STALE_GROUP_IDLE_MS = 3600 * 1000


class AdminEvent(BaseModel):
    """One entry of the admin-events stream."""

    model_config = ConfigDict(frozen=True)

    id: str
    kind: str
    payload: dict[str, Any]


def stream_key(prefix: str) -> str:
    """Return the admin-events stream's key."""
    return f"{prefix}{STREAM}"


def notices_channel(prefix: str) -> str:
    """Return the Pub/Sub channel of "something changed" notices."""
    return f"{prefix}{NOTICES}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _event(entry_id: Any, fields: dict[Any, Any]) -> AdminEvent:
    decoded = {_text(k): _text(v) for k, v in fields.items()}
    try:
        payload = json.loads(decoded.get("payload", "{}"))
    except ValueError:
        payload = {"raw": decoded.get("payload")}
    return AdminEvent(id=_text(entry_id), kind=decoded.get("kind", ""), payload=payload)


class RedisEvents:
    """Publishes admin events on the ``{prefix}admin-events`` stream; a Redis failure is logged, not raised."""

    def __init__(self, client: RedisClient, prefix: str) -> None:
        self.client = client
        self.stream = stream_key(prefix)
        self.notices = notices_channel(prefix)

    def publish(self, kind: str, payload: dict[str, Any]) -> None:
        """Append an event to the stream and send its notice; log, never raise, when Redis does not answer."""
        try:
            self.client.xadd(
                self.stream,
                {"kind": kind, "payload": json.dumps(payload, default=str)},
                maxlen=10_000,
                approximate=True,
            )
            self.client.publish(self.notices, json.dumps({"kind": kind, **payload}, default=str))
        except redis.RedisError as exc:
            log.warning("admin event %s not published: %s", kind, exc)


class AdminEventConsumer:
    """Reads the admin-events stream through this instance's own consumer group and reacts to each event."""

    def __init__(
        self,
        client: RedisClient,
        prefix: str,
        *,
        on_event: Callable[[AdminEvent], None],
        instance: str | None = None,
        block_ms: int = 250,
    ) -> None:
        self.client = client
        self.stream = stream_key(prefix)
        self.group = f"{GROUP_PREFIX}{instance or uuid.uuid4().hex[:12]}"
        self.on_event = on_event
        self.block_ms = block_ms
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.handled = 0

    def ensure_group(self, *, again: bool = False) -> None:
        """Create this instance's group at the stream's end (new events only); remove long-dead instances' groups.

        ``again`` is for a group that vanished (Redis restarted, or the stream was deleted): the group
        is made on the stream as the next event re-creates it, from its first entry, and the stream
        itself is never re-created here, so a deleted stream stays deleted until an event is published.
        """
        try:
            if again:
                self.client.xgroup_create(self.stream, self.group, id="0")
            else:
                self.client.xgroup_create(self.stream, self.group, id="$", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        try:
            self._remove_stale_groups()
        except redis.ResponseError as exc:
            # Best effort: the stream may vanish between the two calls, and a failure here must not
            # make the reader create its group (and so the stream) again from scratch.
            log.info("stale admin-event groups not cleaned: %s", exc)

    def _remove_stale_groups(self) -> None:
        for group in self.client.xinfo_groups(self.stream):
            name = _text(group["name"])
            if name == self.group or not name.startswith(GROUP_PREFIX):
                continue
            consumers = self.client.xinfo_consumers(self.stream, name)
            if consumers and all(int(c["idle"]) > STALE_GROUP_IDLE_MS for c in consumers):
                self.client.xgroup_destroy(self.stream, name)

    def poll(self, *, block_ms: int | None = None) -> list[AdminEvent]:
        """Read the events new to this group (waiting up to ``block_ms``), handle and acknowledge them."""
        answer: Any = self.client.xreadgroup(
            self.group,
            "reader",
            {self.stream: ">"},
            count=100,
            block=self.block_ms if block_ms is None else block_ms,
        )
        events: list[AdminEvent] = []
        for _stream, entries in answer or []:
            for entry_id, fields in entries:
                event = _event(entry_id, fields)
                try:
                    self.on_event(event)
                except Exception:
                    log.exception("admin event %s not handled", event.kind)
                events.append(event)
                self.client.xack(self.stream, self.group, entry_id)
        self.handled += len(events)
        return events

    def start(self) -> None:
        """Start the reader thread (once); it retries with a pause while Redis is down."""
        with self._lock:
            if self._thread is not None:
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=f"admin-events-{self.group}", daemon=True)
            self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        ready, made = False, False
        while not self._stop.is_set():
            try:
                if not ready:
                    self.ensure_group(again=made)
                    ready = made = True
                self.poll()
            except redis.ResponseError as exc:
                if "NOGROUP" in str(exc) or "requires the key to exist" in str(exc):
                    ready = False  # the stream or group is gone: make the group again once the stream is back
                else:
                    log.info("admin events not read: %s", exc)
                self._stop.wait(1.0)
            except redis.RedisError as exc:
                log.info("admin events not read, Redis unavailable: %s", exc.__class__.__name__)
                self._stop.wait(1.0)

    def stop(self) -> None:
        """Stop the reader thread and remove this instance's group."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout=5)
        with contextlib.suppress(redis.RedisError):
            self.client.xgroup_destroy(self.stream, self.group)


class ChangeNotices:
    """Publishes and listens to lightweight "something changed" notices on Pub/Sub (at most once, no history)."""

    def __init__(self, client: RedisClient, prefix: str) -> None:
        self.client = client
        self.channel = notices_channel(prefix)

    def publish(self, kind: str, payload: dict[str, Any]) -> int:
        """Tell listening instances that something changed; return how many received it (0 when Redis is down)."""
        try:
            return int(self.client.publish(self.channel, json.dumps({"kind": kind, **payload}, default=str)))
        except redis.RedisError:
            return 0

    def listen(self, on_notice: Callable[[dict[str, Any]], None], *, stop: threading.Event) -> None:
        """Call ``on_notice`` for each notice until ``stop`` is set (run it on a thread of its own)."""
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(self.channel)
        try:
            while not stop.is_set():
                message = pubsub.get_message(timeout=0.2)
                if message is None:
                    continue
                try:
                    on_notice(json.loads(_text(message["data"])))
                except ValueError:
                    on_notice({"kind": _text(message["data"])})
        finally:
            pubsub.close()


def dropping_on_invalidation(drop_local: Callable[[], object]) -> Callable[[AdminEvent], None]:
    """Return an event handler that calls ``drop_local`` on every cache invalidation event."""

    def handle(event: AdminEvent) -> None:
        if event.kind in CACHE_INVALIDATIONS:
            drop_local()

    return handle
