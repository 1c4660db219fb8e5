"""Provider health for operators: every breaker's state, and the audited action that forces one."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from core.audit import AuditLog
from core.models import Actor, InvalidInput
from core.providers.breaker import BreakerOverride, BreakerStatus, CircuitBreakers
from core.rbac import Permission

ACTION = "force_breaker"


class BreakerChange(BaseModel):
    """An operator's request to force a provider's breaker open or closed, or release it (``auto``)."""

    model_config = ConfigDict(frozen=True)

    provider: str = Field(min_length=1, max_length=32)
    override: BreakerOverride
    reason: str = ""


class ProviderHealth:
    """Reads and forces the providers' circuit breakers."""

    def __init__(self, breakers: CircuitBreakers, audit: AuditLog, providers: tuple[str, ...]) -> None:
        self.breakers = breakers
        self.audit = audit
        self.providers = providers

    def statuses(self) -> list[BreakerStatus]:
        """Return every provider's breaker (raises ``redis.RedisError`` when Redis is down)."""
        return [self.breakers.status(name) for name in self.providers]

    def force(self, actor: Actor, change: BreakerChange) -> BreakerStatus:
        """Force a provider's breaker open or closed (or release it), and record who did it and why."""
        with self.audit.action(
            actor,
            ACTION,
            permission=Permission.FORCE_BREAKER,
            target_type="provider",
            target_id=change.provider,
            reason=change.reason,
        ) as action:
            if change.provider not in self.providers:
                raise InvalidInput(f"Unknown provider {change.provider!r}: use one of {', '.join(self.providers)}.")
            action.before = self.breakers.status(change.provider).as_dict()
            self.breakers.set_override(change.provider, change.override)
            after = self.breakers.status(change.provider)
            action.after = after.as_dict()
        return after
