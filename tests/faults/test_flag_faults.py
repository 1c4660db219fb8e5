"""Flag changes with PostgreSQL (the audit log) or Unleash frozen, killed or away: no change without its row.

Unleash is the run's own (its tests run in one worker); the audit log is on the fault tests' own
PostgreSQL, so freezing or killing it touches no other test. The flag is one this module creates.
Cells are written into docs/reliability.md (part ``flags``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.bootstrap import Services, build_services
from core.domain.models import Role
from core.flags.models import FlagToggle
from core.flags.unleash_admin import UnleashAdmin
from tests.faults.conftest import TIMEOUTS
from tests.support.faults import (
    PrivateServers,
    attempt,
    audit_rows_since,
    cell_text,
    check_cell,
    last_audit_id,
    write_part,
)
from tests.support.network import free_port
from tests.support.polling import eventually
from tests.support.settings import actor, settings_for
from tests.support.unleash import RunningUnleash

pytestmark = pytest.mark.xdist_group("unleash")

PRODUCT = actor(Role.PRODUCT, "pm@faults.test")
PG = "postgres"
ENVIRONMENT = "development"
FAULTS = {
    "pg-frozen-before": "PostgreSQL frozen before the change",
    "pg-frozen-after": "PostgreSQL frozen right after the change",
    "pg-killed-after": "PostgreSQL killed right after the change",
    "unleash-frozen": "Unleash frozen as the change is sent",
    "unleash-down": "Unleash down",
}
CELLS: dict[str, str] = {}


@pytest.fixture(scope="module")
def flag(unleash: RunningUnleash) -> Iterator[str]:
    admin = UnleashAdmin(unleash.endpoint.api_url, unleash.endpoint.admin_token)
    name = f"faults-{uuid.uuid4().hex[:8]}"
    admin.create_flag("default", name, "release", "made by the fault tests")
    try:
        yield name
    finally:
        admin.close()
    if len(CELLS) == len(FAULTS):
        write_part("flags", _table())


def _services(private: PrivateServers, unleash: RunningUnleash, tmp_path: Path, *, down: bool) -> Services:
    api_url = f"http://127.0.0.1:{free_port()}/api" if down else unleash.endpoint.api_url
    settings = settings_for(
        private.database_url,
        private.redis_url,
        "krowoc-faults-flags:",
        unleash_url=api_url,
        unleash_admin_token=unleash.endpoint.admin_token,
        unleash_client_token=unleash.endpoint.client_tokens["production"],
        unleash_backup_dir=tmp_path / "backup",
        unleash_timeout_seconds=1.0,
        **TIMEOUTS,
    )
    return build_services(settings)


def _enabled(unleash: RunningUnleash, name: str) -> bool:
    admin = UnleashAdmin(unleash.endpoint.api_url, unleash.endpoint.admin_token)
    try:
        state, _ = admin.environment_state("default", name, ENVIRONMENT)
        return state.enabled
    finally:
        admin.close()


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_flag_change_never_happens_without_its_row(
    private: PrivateServers,
    unleash: RunningUnleash,
    flag: str,
    fault: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = _enabled(unleash, flag)
    last_id = last_audit_id(private.database_url)
    services = _services(private, unleash, tmp_path, down=fault == "unleash-down")
    admin = services.flags.admin
    assert admin is not None
    original = admin.set_enabled
    frozen: list[int] = []
    killed = False
    unleash_pid = unleash.server.pid()
    assert unleash_pid is not None

    def with_fault(*args: Any, **kwargs: Any) -> Any:
        nonlocal killed
        if fault == "unleash-frozen":
            frozen.extend(private.stop([unleash_pid]))
        result = original(*args, **kwargs)
        if fault == "pg-frozen-after":
            frozen.extend(private.freeze(PG))
        elif fault == "pg-killed-after":
            private.kill(PG)
            killed = True
        return result

    monkeypatch.setattr(admin, "set_enabled", with_fault)
    if fault == "pg-frozen-before":
        frozen.extend(private.freeze(PG))
    change = FlagToggle(name=flag, environment=ENVIRONMENT, on=not before, reason="fault")
    attempted = attempt(lambda: services.flags.set_enabled(PRODUCT, change))
    private.thaw(frozen)
    monkeypatch.undo()
    if killed:
        private.restart()
    services.audit.reap(now=datetime.now(UTC) + timedelta(hours=1))
    services.close()
    rows = audit_rows_since(private.database_url, last_id, "flag.toggle")
    # A request Unleash took while frozen is carried out once it goes on: give it that moment.
    changed = eventually(lambda: _enabled(unleash, flag) != before, timeout=3 if fault == "unleash-frozen" else 0.2)
    CELLS[fault] = cell_text(changed=changed, rows=rows, attempted=attempted)
    check_cell("flag.toggle", fault, changed=changed, rows=rows)


def _table() -> list[str]:
    lines = [
        "## Flag changes",
        "",
        "| action | " + " | ".join(FAULTS.values()) + " |",
        "| --- | " + " | ".join("---" for _ in FAULTS) + " |",
    ]
    cells = [CELLS[fault] for fault in FAULTS]
    return [*lines, "| `flag.toggle` | " + " | ".join(cells) + " |", ""]
