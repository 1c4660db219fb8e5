"""Staff roles and what each may do."""

from __future__ import annotations

from enum import StrEnum

from core.domain.models import Actor, Role


class Permission(StrEnum):
    VIEW_DASHBOARD = "view_dashboard"
    VIEW_AUDIT_LOG = "view_audit_log"
    TOGGLE_FLAG = "toggle_flag"
    CHANGE_ROLLOUT = "change_rollout"
    INVALIDATE_CACHE = "invalidate_cache"
    RECOMPUTE_ROLLUPS = "recompute_rollups"
    RECOMPUTE_LEADERBOARDS = "recompute_leaderboards"
    FORCE_BREAKER = "force_breaker"
    CHANGE_USER_TIER = "change_user_tier"
    SUSPEND_USER = "suspend_user"
    RESET_RATE_LIMIT = "reset_rate_limit"
    CANCEL_EXECUTION = "cancel_execution"
    REVEAL_PAYLOAD = "reveal_payload"
    EXPORT_EXECUTIONS = "export_executions"
    INSPECT_CACHE_KEYS = "inspect_cache_keys"
    VIEW_DEPENDENCY_DETAILS = "view_dependency_details"
    SEED_DATABASE = "seed_database"


_SUPPORT = {
    Permission.CHANGE_USER_TIER,
    Permission.SUSPEND_USER,
    Permission.RESET_RATE_LIMIT,
    Permission.CANCEL_EXECUTION,
    Permission.REVEAL_PAYLOAD,
    Permission.EXPORT_EXECUTIONS,
}
_OPERATOR = {
    Permission.INVALIDATE_CACHE,
    Permission.RECOMPUTE_ROLLUPS,
    Permission.RECOMPUTE_LEADERBOARDS,
    Permission.FORCE_BREAKER,
    Permission.VIEW_AUDIT_LOG,
    Permission.INSPECT_CACHE_KEYS,
    Permission.VIEW_DEPENDENCY_DETAILS,
}
_PRODUCT = {Permission.TOGGLE_FLAG, Permission.CHANGE_ROLLOUT}

GRANTS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.VIEW_DASHBOARD}),
    # Support and product read the audit log too: they check their own changes there.
    Role.SUPPORT: frozenset({Permission.VIEW_DASHBOARD, Permission.VIEW_AUDIT_LOG, *_SUPPORT}),
    Role.OPERATOR: frozenset({Permission.VIEW_DASHBOARD, *_OPERATOR}),
    Role.PRODUCT: frozenset({Permission.VIEW_DASHBOARD, Permission.VIEW_AUDIT_LOG, *_PRODUCT}),
    Role.ADMIN: frozenset(Permission),
}


class PermissionDenied(Exception):
    """The actor's role does not allow the action."""

    def __init__(self, actor: Actor, permission: Permission) -> None:
        super().__init__(f"The {actor.role} role may not {permission.value.replace('_', ' ')}.")
        self.actor = actor
        self.permission = permission


def can(actor: Actor, permission: Permission) -> bool:
    """Tells whether the actor's role grants a permission."""
    return permission in GRANTS[actor.role]


def require(actor: Actor, permission: Permission) -> None:
    """Raise ``PermissionDenied`` unless the actor's role grants the permission."""
    if not can(actor, permission):
        raise PermissionDenied(actor, permission)
