"""How many admin actions one member of staff may make in a row: a token bucket per person and action.

A person gets ``burst`` actions of a kind at once and ``per_minute`` a minute after that, in Redis,
so every dashboard instance and the API count the same bucket. A refusal says how long to wait and
is recorded in the audit log as denied. When Redis does not answer, actions go through: the
throttle guards against a script or a stolen session firing actions in bulk, and a dead cache must
not stop support from working.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import redis

from core.adapters.redis import RedisClient
from core.adapters.token_bucket import TOKEN_BUCKET
from core.domain.actions import AdminAction
from core.domain.exceptions import InvalidInput

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActionLimit:
    """A person's allowance of one kind of action: ``burst`` at once, then ``per_minute``."""

    per_minute: float
    burst: int

    @classmethod
    def parse(cls, text: str) -> ActionLimit:
        """Read a limit written ``<per minute>/<burst>``, for example ``30/10``."""
        per_minute, _, burst = text.partition("/")
        try:
            limit = cls(per_minute=float(per_minute), burst=int(burst))
        except ValueError:
            raise InvalidInput(f"An action limit looks like 30/10 (per minute / burst), not {text!r}.") from None
        if limit.per_minute <= 0 or limit.burst < 1:
            raise InvalidInput(f"An action limit needs a positive rate and a burst of at least 1, not {text!r}.")
        return limit


DEFAULT_LIMIT = ActionLimit(per_minute=30, burst=10)
DEFAULT_LIMITS: dict[AdminAction, ActionLimit] = {
    # Reading one person's data is what a stolen session would do in bulk: it gets the tightest limit.
    AdminAction.EXECUTION_REVEAL_PAYLOAD: ActionLimit(per_minute=10, burst=5),
    AdminAction.EXECUTIONS_EXPORT: ActionLimit(per_minute=2, burst=2),
    AdminAction.CACHE_LOOKUP_KEY: ActionLimit(per_minute=60, burst=20),
}


class ActionThrottled(InvalidInput):
    """The person made too many actions of this kind in a row; the message says how long to wait."""

    def __init__(self, action: AdminAction, retry_after_seconds: float) -> None:
        wait = max(1, math.ceil(retry_after_seconds))
        super().__init__(f"Too many {action.value} in a row: wait {wait} s and try again.")
        self.retry_after_seconds = retry_after_seconds


class ActionThrottle:
    """One token bucket per person and action, in Redis under ``{prefix}throttle:{<person>}:<action>``."""

    def __init__(
        self,
        client: RedisClient,
        prefix: str,
        *,
        limits: dict[AdminAction, ActionLimit] | None = None,
        default: ActionLimit = DEFAULT_LIMIT,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.limits = {**DEFAULT_LIMITS, **(limits or {})}
        self.default = default
        self._script = client.register_script(TOKEN_BUCKET)
        self.redis_errors = 0

    def key(self, person: str, action: AdminAction) -> str:
        """Return the key of a person's bucket for one kind of action."""
        return f"{self.prefix}throttle:{{{person}}}:{action.value}"

    def take(self, person: str, action: AdminAction) -> None:
        """Take one action from the person's allowance, or raise ``ActionThrottled``."""
        limit = self.limits.get(action, self.default)
        try:
            allowed, _, retry_ms, _, _ = self._script(
                keys=[self.key(person, action)], args=[repr(limit.per_minute / 60.0), limit.burst, 1, -1]
            )
        except redis.RedisError as exc:
            self.redis_errors += 1
            log.warning("action throttle not checked, Redis unavailable: %s", exc.__class__.__name__)
            return
        if not allowed:
            raise ActionThrottled(action, int(retry_ms) / 1000.0)
