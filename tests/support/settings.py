"""Settings and actors for tests: pointed at the test servers, with a key prefix of the run's own."""

from __future__ import annotations

import json
from pathlib import Path

from core.audit.throttle import DEFAULT_LIMITS
from core.config import Settings
from core.domain.models import Actor, AuditSource, Role

PROJECT_ROOT = Path(__file__).resolve().parents[2]


UNTHROTTLED = "6000/1000"
"""A per-person action limit no test reaches: tests act as a few names many times in a run."""
TEST_ENV = {
    "KROWOC_ACTION_LIMIT_DEFAULT": UNTHROTTLED,
    "KROWOC_ACTION_LIMITS": json.dumps({action.value: UNTHROTTLED for action in DEFAULT_LIMITS}),
    "KROWOC_ALLOW_OWNER": "true",
}
"""The same for a dashboard or command configured through the environment; and tests make their
databases as the server's superuser, so the dashboard may connect as it (``tests/integration/test_db_roles``
runs it as the app role)."""


def settings_for(database_url: str, redis_url: str, redis_prefix: str, **extra: object) -> Settings:
    """Build settings that point at the test servers (actions unthrottled unless ``extra`` says otherwise)."""
    values: dict[str, object] = {
        "action_limit_default": UNTHROTTLED,
        "action_limits": {action.value: UNTHROTTLED for action in DEFAULT_LIMITS},
        "allow_owner": True,
        **extra,
    }
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        redis_key_prefix=redis_prefix,
        dev_login=True,
        **values,  # type: ignore[arg-type]
    )


def actor(role: Role, name: str | None = None) -> Actor:
    """Build a staff actor of a role, acting from the command line."""
    return Actor(id=name or f"{role.value}@krowoc.test", role=role, source=AuditSource.CLI)


AUDITOR = Actor(id="auditor@krowoc.test", role=Role.ADMIN, source=AuditSource.CLI)
"""The member of staff tests read the audit log as (reading it needs the audit permission)."""
