"""The incidents every running simulator should have in force: a Redis hash they all read once a second.

The hash ``{prefix}simulator:incidents`` lists the incidents that should be in force,
``krowoc-admin simulate incident start|end|list`` edits it, and every running simulator reads it
once a second and starts or ends incidents to match. The ``--incident`` given at launch is listed
there too, so it can be ended from outside, and is taken off again when that simulator exits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from core.adapters.redis import RedisClient
from core.domain.exceptions import InvalidInput
from devstack.simulator.incidents import Incident

INCIDENTS_KEY = "simulator:incidents"
"""The control channel's hash, under the Redis key prefix: incident -> {"since", "by"} as JSON."""
BY_COMMAND_LINE = "the command line"
INCIDENT_FORMS = "provider_outage:<provider>, rate_limit_storm[:<provider>] or latency_spike:<provider>"


# One key each, so they run the same on a single server and on a Redis Cluster.
# Deletes an entry only while it still holds what its writer put there (an operator may have taken it over).
_END_IF_UNCHANGED = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
"""
# Empties the list and returns what it held, in one step.
_END_ALL = """
local names = redis.call('HKEYS', KEYS[1])
redis.call('DEL', KEYS[1])
return names
"""


@dataclass(frozen=True)
class ListedIncident:
    """An incident on the control channel: since when it is listed and who listed it."""

    incident: Incident
    since: datetime | None
    by: str


@dataclass(frozen=True)
class ChannelReading:
    """What the control channel lists: the incidents, and the entries that name none (with why)."""

    incidents: list[ListedIncident]
    unknown: dict[str, str]


def _text(value: bytes | str) -> str:
    # A hand-written entry may hold any bytes: show them, never fail on them.
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _entry(since: datetime, by: str) -> str:
    return json.dumps({"since": since.isoformat(), "by": by})


def _read_entry(incident: Incident, raw: bytes | str | None) -> ListedIncident:
    """Decode an entry's value; a hand-written value still lists its incident, with what could be read."""
    try:
        meta = json.loads(_text(raw or "{}"))
        since = datetime.fromisoformat(meta["since"]) if isinstance(meta.get("since"), str) else None
        by = str(meta.get("by") or "someone unknown")
    except (ValueError, AttributeError):
        since, by = None, "someone unknown"
    return ListedIncident(incident, since, by)


class IncidentChannel:
    """The incidents every running simulator should have in force: a Redis hash shared by all of them.

    Every method raises ``redis.RedisError`` when Redis does not answer; callers decide what that means.
    """

    def __init__(self, client: RedisClient, prefix: str) -> None:
        self.client = client
        self.key = f"{prefix}{INCIDENTS_KEY}"
        self._end_if_unchanged = client.register_script(_END_IF_UNCHANGED)
        self._end_all = client.register_script(_END_ALL)

    def read(self) -> ChannelReading:
        """Read the listed incidents, and apart from them the entries (written by hand) that name none."""
        found: list[ListedIncident] = []
        unknown: dict[str, str] = {}
        for name, raw in self.client.hgetall(self.key).items():
            try:
                found.append(_read_entry(Incident.parse(_text(name)), raw))
            except InvalidInput as exc:
                unknown[_text(name)] = str(exc).rstrip(".")
        return ChannelReading(sorted(found, key=lambda item: str(item.incident)), dict(sorted(unknown.items())))

    def put(self, incident: Incident, *, by: str) -> ListedIncident | None:
        """List an incident as ``by``'s, keeping its start time when already listed; return the entry it replaced."""
        raw = self.client.hget(self.key, str(incident))
        before = None if raw is None else _read_entry(incident, raw)
        since = before.since if before is not None and before.since is not None else datetime.now(UTC)
        self.client.hset(self.key, str(incident), _entry(since, by))
        return before

    def add(self, incident: Incident, *, by: str) -> str | None:
        """List an incident unless it is listed already; return the entry written, None when there was one."""
        entry = _entry(datetime.now(UTC), by)
        return entry if self.client.hsetnx(self.key, str(incident), entry) else None

    def end(self, incident: Incident) -> bool:
        """Take an incident off the list; return whether it was listed."""
        return bool(self.client.hdel(self.key, str(incident)))

    def end_all(self) -> list[str]:
        """Take every incident off the list; return the entries there were."""
        return sorted(_text(name) for name in self._end_all(keys=[self.key]))

    def end_if_unchanged(self, incident: Incident, entry: str) -> bool:
        """Take an incident off the list only while it still holds ``entry``; return whether it did."""
        return bool(self._end_if_unchanged(keys=[self.key], args=[str(incident), entry]))
