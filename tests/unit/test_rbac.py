"""Staff roles: who may do what."""

from __future__ import annotations

import pytest

from core.domain.models import Actor, Role
from core.domain.rbac import GRANTS, Permission, PermissionDenied, can, require

P = Permission


def _actor(role: Role) -> Actor:
    return Actor(id=f"{role.value}@krowoc.test", role=role)


@pytest.mark.parametrize("role", list(Role))
def test_every_role_can_view_the_dashboard(role: Role) -> None:
    assert can(_actor(role), P.VIEW_DASHBOARD)


def test_viewer_can_only_view() -> None:
    viewer = _actor(Role.VIEWER)
    assert {p for p in Permission if can(viewer, p)} == {P.VIEW_DASHBOARD}


def test_support_handles_users_but_not_flags_or_caches() -> None:
    support = _actor(Role.SUPPORT)
    for allowed in (
        P.CHANGE_USER_TIER,
        P.SUSPEND_USER,
        P.RESET_RATE_LIMIT,
        P.CANCEL_EXECUTION,
        P.REVEAL_PAYLOAD,
    ):
        assert can(support, allowed), allowed
    for refused in (P.TOGGLE_FLAG, P.CHANGE_ROLLOUT, P.INVALIDATE_CACHE, P.RECOMPUTE_ROLLUPS):
        assert not can(support, refused), refused


def test_operator_runs_caches_and_rollups_but_not_users_or_flags() -> None:
    operator = _actor(Role.OPERATOR)
    for allowed in (P.INVALIDATE_CACHE, P.RECOMPUTE_ROLLUPS, P.RECOMPUTE_LEADERBOARDS, P.VIEW_AUDIT_LOG):
        assert can(operator, allowed), allowed
    for refused in (P.TOGGLE_FLAG, P.SUSPEND_USER, P.REVEAL_PAYLOAD):
        assert not can(operator, refused), refused


def test_product_toggles_flags_but_not_caches() -> None:
    product = _actor(Role.PRODUCT)
    assert can(product, P.TOGGLE_FLAG)
    assert can(product, P.CHANGE_ROLLOUT)
    assert not can(product, P.INVALIDATE_CACHE)
    assert not can(product, P.CHANGE_USER_TIER)


def test_admin_can_do_everything() -> None:
    admin = _actor(Role.ADMIN)
    assert all(can(admin, p) for p in Permission)
    assert GRANTS[Role.ADMIN] == frozenset(Permission)


def test_every_role_has_grants() -> None:
    assert set(GRANTS) == set(Role)


def test_require_raises_a_message_a_person_can_read() -> None:
    support = _actor(Role.SUPPORT)
    require(support, P.SUSPEND_USER)  # allowed: no error
    with pytest.raises(PermissionDenied) as caught:
        require(support, P.TOGGLE_FLAG)
    assert str(caught.value) == "The support role may not toggle flag."
    assert caught.value.actor == support
    assert caught.value.permission is P.TOGGLE_FLAG


def test_every_staff_role_but_viewer_reads_the_audit_log() -> None:
    for role in (Role.SUPPORT, Role.OPERATOR, Role.PRODUCT, Role.ADMIN):
        assert can(_actor(role), P.VIEW_AUDIT_LOG), role
    assert not can(_actor(Role.VIEWER), P.VIEW_AUDIT_LOG)
