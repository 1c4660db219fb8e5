"""Audit action names as ``area.verb``: the rows written under the earlier names are renamed.

``change_user_tier`` becomes ``user.change_tier``, ``invalidate_cache_namespace`` becomes
``cache.invalidate_namespace`` and so on (``core.domain.actions.LEGACY_NAMES`` lists them;
``flag.toggle`` and ``flag.rollout`` kept theirs). The audit log is append-only: its trigger is
set aside for this one statement, inside the migration's transaction, and back before it commits.
The mapping is written out here rather than imported, so the migration never changes with the code.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 12:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RENAMED = {
    "change_user_tier": "user.change_tier",
    "suspend_user": "user.suspend",
    "restore_user": "user.restore",
    "reset_rate_limit": "user.reset_rate_limit",
    "cancel_execution": "execution.cancel",
    "reveal_payload": "execution.reveal_payload",
    "invalidate_cache_namespace": "cache.invalidate_namespace",
    "invalidate_cache_tier": "cache.invalidate_tier",
    "recompute_leaderboards": "leaderboards.recompute",
    "force_breaker": "provider.force_breaker",
}


def _rename(mapping: dict[str, str]) -> None:
    values = ", ".join(f"('{old}', '{new}')" for old, new in mapping.items())
    op.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
    op.execute(f"UPDATE audit_log AS a SET action = m.new FROM (VALUES {values}) AS m(old, new) WHERE a.action = m.old")
    op.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")


def upgrade() -> None:
    _rename(RENAMED)


def downgrade() -> None:
    _rename({new: old for old, new in RENAMED.items()})
