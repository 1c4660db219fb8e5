"""Incidents a simulator can inject: a provider outage, a rate-limit storm, a latency spike.

``Incidents`` is the set in force in one process, read by every simulated provider on every call;
``devstack.simulator.channel`` keeps it in line with the incidents listed in Redis.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from core.domain.catalog import PROVIDERS
from core.domain.exceptions import InvalidInput

INCIDENT_KINDS = ("provider_outage", "rate_limit_storm", "latency_spike")


@dataclass(frozen=True)
class Incident:
    """An incident to inject: ``provider_outage:openai``, ``rate_limit_storm``, ``latency_spike:anthropic``."""

    kind: str
    provider: str | None = None

    @classmethod
    def parse(cls, text: str) -> Incident:
        """Read an incident from its command-line form; refuse unknown kinds and providers."""
        kind, _, provider = text.strip().partition(":")
        if kind not in INCIDENT_KINDS:
            raise InvalidInput(f"Unknown incident {kind!r}: use one of {', '.join(INCIDENT_KINDS)}.")
        if kind == "rate_limit_storm":
            if provider and provider not in PROVIDERS:
                raise InvalidInput(f"Unknown provider {provider!r}: use one of {', '.join(PROVIDERS)}.")
            return cls(kind, provider or None)
        if not provider:
            raise InvalidInput(f"The incident {kind} needs a provider, for example {kind}:openai.")
        if provider not in PROVIDERS:
            raise InvalidInput(f"Unknown provider {provider!r}: use one of {', '.join(PROVIDERS)}.")
        return cls(kind, provider)

    def __str__(self) -> str:
        return f"{self.kind}:{self.provider}" if self.provider else self.kind


@dataclass
class Incidents:
    """The incidents in force, shared by every simulated provider (thread-safe)."""

    active: set[Incident] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, incident: Incident) -> None:
        """Put an incident in force."""
        with self._lock:
            self.active.add(incident)

    def stop(self, incident: Incident | None = None) -> None:
        """End one incident, or all of them."""
        with self._lock:
            if incident is None:
                self.active.clear()
            else:
                self.active.discard(incident)

    def reconcile(self, wanted: set[Incident]) -> tuple[set[Incident], set[Incident]]:
        """Put exactly ``wanted`` in force; return the incidents this started and those it ended."""
        with self._lock:
            started, ended = wanted - self.active, self.active - wanted
            self.active.difference_update(ended)
            self.active.update(started)
        return started, ended

    def in_force(self) -> frozenset[Incident]:
        """Return the incidents in force now."""
        with self._lock:
            return frozenset(self.active)

    def affecting(self, provider: str) -> set[str]:
        """Return the kinds of incident hitting a provider now."""
        with self._lock:
            return {i.kind for i in self.active if i.provider in (None, provider)}
