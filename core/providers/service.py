"""Provider health for operators: every breaker's state, and the audited action that forces one."""

from __future__ import annotations

import redis
from pydantic import Field

from core.audit import AuditLog
from core.domain.actions import AdminAction
from core.domain.exceptions import InvalidInput, RedisUnavailable
from core.domain.models import ActionRequest, Actor
from core.domain.rbac import Permission
from core.providers.breaker import BreakerOverride, BreakerStatus, CircuitBreakers


class BreakerChange(ActionRequest):
    """An operator's request to force a provider's breaker open or closed, or release it (``auto``)."""

    provider: str = Field(min_length=1, max_length=32)
    override: BreakerOverride


class ProviderHealth:
    """Reads and forces the providers' circuit breakers."""

    def __init__(self, breakers: CircuitBreakers, audit: AuditLog, providers: tuple[str, ...]) -> None:
        self.breakers = breakers
        self.audit = audit
        self.providers = providers

    def statuses(self) -> list[BreakerStatus]:
        """Return every provider's breaker (raises ``RedisUnavailable`` when Redis is down)."""
        try:
            return [self.breakers.status(name) for name in self.providers]
        except redis.RedisError as exc:
            raise RedisUnavailable("Redis is down: provider circuit-breaker states are unknown.") from exc

    def _known(self, provider: str) -> None:
        if provider not in self.providers:
            raise InvalidInput(f"Unknown provider {provider!r}: use one of {', '.join(self.providers)}.")

    def force(self, actor: Actor, change: BreakerChange) -> BreakerStatus:
        """Force a provider's breaker open or closed (or release it), and record who did it and why."""
        with self.audit.action(
            actor,
            AdminAction.PROVIDER_FORCE_BREAKER,
            permission=Permission.FORCE_BREAKER,
            target_type="provider",
            target_id=change.provider,
            reason=change.reason,
            external=True,
            check=lambda: self._known(change.provider),
        ) as action:
            try:
                action.before = self.breakers.status(change.provider).as_dict()
                self.breakers.set_override(change.provider, change.override)
                after = self.breakers.status(change.provider)
            except redis.RedisError as exc:
                raise RedisUnavailable("Redis did not answer: the breaker was not changed.") from exc
            action.after = after.as_dict()
        return after
