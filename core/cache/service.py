"""What operators do with the cache: look (``CacheInspector``), and invalidate a namespace or a tier.

Invalidations are admin actions: permission-checked, validated and audited through
``AuditLog.action`` (denied, invalid and failed attempts too), which also publishes them on the
admin-events stream so every dashboard instance drops its memory tier.
"""

from __future__ import annotations

import redis
from pydantic import Field

from core.audit import AuditLog
from core.cache.inspection import CacheInspector
from core.cache.keys import CacheTier, Namespace
from core.cache.models import InvalidationResult, KeyLookup
from core.cache.store import Cache
from core.domain.actions import AdminAction
from core.domain.exceptions import InvalidInput, RedisUnavailable
from core.domain.models import ActionRequest, Actor
from core.domain.rbac import Permission


class NamespaceInvalidation(ActionRequest):
    """Invalidate every key of one cache namespace, saying why."""

    namespace: str = Field(min_length=1, max_length=64)


class TierInvalidation(ActionRequest):
    """Invalidate every namespace of one cache tier, saying why."""

    tier: str = Field(min_length=1, max_length=64)


def _namespace(name: str) -> Namespace:
    try:
        return Namespace(name)
    except ValueError:
        names = ", ".join(ns.value for ns in Namespace)
        raise InvalidInput(f"Unknown cache namespace {name!r}: pick one of {names}.") from None


def _tier(name: str) -> CacheTier:
    try:
        return CacheTier(name)
    except ValueError:
        names = ", ".join(t.value for t in CacheTier)
        raise InvalidInput(f"Unknown cache tier {name!r}: pick one of {names}.") from None


class CacheService(CacheInspector):
    """The Cache page's figures, and the audited invalidation of a namespace or a tier."""

    def __init__(self, cache: Cache, audit: AuditLog) -> None:
        super().__init__(cache)
        self.audit = audit

    def lookup_key(self, actor: Actor, key: str) -> KeyLookup:
        """Look one cache, statistics or rate-limit key up for an operator or an admin (audited, secrets masked)."""
        key = key.strip()
        with self.audit.action(
            actor,
            AdminAction.CACHE_LOOKUP_KEY,
            permission=Permission.INSPECT_CACHE_KEYS,
            target_type="cache_key",
            target_id=key or "-",
            reason_required=False,
            check=lambda: self.check_lookup(key),
        ) as action:
            found = self.read_key(key)
            # The row says which key was looked at and what it held, never its value.
            action.after = {"exists": found.exists, "type": found.type, "length": found.length}
        return found

    def invalidate_namespace(self, actor: Actor, request: NamespaceInvalidation) -> InvalidationResult:
        """Invalidate every key of one namespace (bump its version), as an audited admin action."""
        namespace = request.namespace
        with self.audit.action(
            actor,
            AdminAction.CACHE_INVALIDATE_NAMESPACE,
            permission=Permission.INVALIDATE_CACHE,
            target_type="cache_namespace",
            target_id=namespace,
            reason=request.reason,
            external=True,
            check=lambda: _namespace(namespace),
        ) as act:
            chosen = _namespace(namespace)
            try:
                before = self.cache.current_versions()[chosen]
                after = self.cache.bump_namespace(chosen)
            except redis.RedisError as exc:
                raise RedisUnavailable(f"Redis is down: nothing was invalidated ({exc.__class__.__name__}).") from exc
            act.before = {"version": before}
            act.after = {"version": after}
        return InvalidationResult(
            target=chosen.value, versions={chosen.value: after}, dropped_local_entries=self.cache.drop_local()
        )

    def invalidate_tier(self, actor: Actor, request: TierInvalidation) -> InvalidationResult:
        """Invalidate every namespace of one tier, as an audited admin action."""
        tier = request.tier
        with self.audit.action(
            actor,
            AdminAction.CACHE_INVALIDATE_TIER,
            permission=Permission.INVALIDATE_CACHE,
            target_type="cache_tier",
            target_id=tier,
            reason=request.reason,
            external=True,
            check=lambda: _tier(tier),
        ) as act:
            chosen = _tier(tier)
            try:
                before = self.cache.current_versions()
                after = self.cache.bump_tier(chosen)
            except redis.RedisError as exc:
                raise RedisUnavailable(f"Redis is down: nothing was invalidated ({exc.__class__.__name__}).") from exc
            act.before = {"versions": {ns.value: before[ns] for ns in after}}
            act.after = {"versions": {ns.value: v for ns, v in after.items()}}
        return InvalidationResult(
            target=chosen.value,
            versions={ns.value: v for ns, v in after.items()},
            dropped_local_entries=self.cache.drop_local(),
        )
