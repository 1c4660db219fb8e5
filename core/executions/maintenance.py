"""Rebuilding the rollups from the raw executions: an audited admin action."""

from __future__ import annotations

from core.audit import AuditLog
from core.domain.actions import AdminAction
from core.domain.models import ActionRequest, Actor
from core.domain.rbac import Permission
from core.executions import rollups


class RollupRebuild(ActionRequest):
    """Recompute the minute and hour rollups from scratch; the reason, optional, goes into the audit log."""


class RollupMaintenance:
    """Rebuilds the rollups of one database, recording who did it and why."""

    def __init__(self, database_url: str, audit: AuditLog) -> None:
        self.database_url = database_url
        self.audit = audit

    def rebuild(self, actor: Actor, request: RollupRebuild) -> int:
        """Recompute both rollups from the raw table (one transaction of its own); return the minute rows."""
        with self.audit.action(
            actor,
            AdminAction.ROLLUPS_REBUILD,
            permission=Permission.RECOMPUTE_ROLLUPS,
            target_type="rollups",
            target_id="all",
            reason=request.reason,
            reason_required=False,
            # The rebuild runs on a connection of its own: its intent is recorded before it starts.
            external=True,
            timeout_seconds=None,
        ) as action:
            rows = rollups.rebuild(self.database_url)
            action.after = {"minute_rows": rows}
        return rows
