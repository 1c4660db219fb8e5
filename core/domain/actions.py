"""Every action the audit log records, named once as ``area.verb``.

The area is what the action acts on (a user, an execution, a flag, the cache), the verb what it
does. Migration 0003 renamed the rows written under the earlier names; ``LEGACY_NAMES`` keeps that
mapping for it and for readers of old exports.
"""

from __future__ import annotations

from enum import StrEnum


class AdminAction(StrEnum):
    """An audited action: the ``action`` column of the audit log."""

    USER_CHANGE_TIER = "user.change_tier"
    USER_SUSPEND = "user.suspend"
    USER_RESTORE = "user.restore"
    USER_RESET_RATE_LIMIT = "user.reset_rate_limit"
    EXECUTION_CANCEL = "execution.cancel"
    EXECUTION_REVEAL_PAYLOAD = "execution.reveal_payload"
    FLAG_TOGGLE = "flag.toggle"
    FLAG_ROLLOUT = "flag.rollout"
    CACHE_INVALIDATE_NAMESPACE = "cache.invalidate_namespace"
    CACHE_INVALIDATE_TIER = "cache.invalidate_tier"
    LEADERBOARDS_RECOMPUTE = "leaderboards.recompute"
    PROVIDER_FORCE_BREAKER = "provider.force_breaker"
    CACHE_LOOKUP_KEY = "cache.lookup_key"
    EXECUTIONS_EXPORT = "executions.export"
    AUDIT_READ = "audit.read"
    ROLLUPS_REBUILD = "rollups.rebuild"
    DATABASE_SEED = "database.seed"


LEGACY_NAMES: dict[str, AdminAction] = {
    "change_user_tier": AdminAction.USER_CHANGE_TIER,
    "suspend_user": AdminAction.USER_SUSPEND,
    "restore_user": AdminAction.USER_RESTORE,
    "reset_rate_limit": AdminAction.USER_RESET_RATE_LIMIT,
    "cancel_execution": AdminAction.EXECUTION_CANCEL,
    "reveal_payload": AdminAction.EXECUTION_REVEAL_PAYLOAD,
    "invalidate_cache_namespace": AdminAction.CACHE_INVALIDATE_NAMESPACE,
    "invalidate_cache_tier": AdminAction.CACHE_INVALIDATE_TIER,
    "recompute_leaderboards": AdminAction.LEADERBOARDS_RECOMPUTE,
    "force_breaker": AdminAction.PROVIDER_FORCE_BREAKER,
}
"""Names written before actions were named ``area.verb``; ``flag.toggle`` and ``flag.rollout`` kept theirs."""

CACHE_INVALIDATIONS: frozenset[AdminAction] = frozenset(
    {AdminAction.CACHE_INVALIDATE_NAMESPACE, AdminAction.CACHE_INVALIDATE_TIER}
)
"""The actions after which every instance drops its in-memory cache tier."""
