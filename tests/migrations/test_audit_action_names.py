"""Migration 0003 renames the audit rows written under the old action names, and back on the way down."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine, text

from core.adapters import migrate
from core.domain.actions import LEGACY_NAMES, AdminAction

INSERT = (
    "INSERT INTO audit_log (actor, actor_role, action, target_type, target_id, request_id, source, outcome) "
    "VALUES ('sam@krowoc.test', 'support', :action, 'user', :target, 'req-1', 'cli', 'success')"
)


def _actions(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT target_id, action FROM audit_log ORDER BY id"))]  # type: ignore[misc]


def test_old_action_names_become_area_verb_and_come_back_on_downgrade(
    make_database: Callable[..., str], engine_for: Callable[[str], Engine]
) -> None:
    url = make_database(empty=True)
    migrate.upgrade(url, "0002")
    engine = engine_for(url)
    old = [*LEGACY_NAMES, "flag.toggle"]
    with engine.begin() as conn:
        for number, name in enumerate(old):
            conn.execute(text(INSERT), {"action": name, "target": str(number)})

    migrate.upgrade(url, "0003")
    renamed = _actions(engine)
    assert renamed == [
        (str(number), (LEGACY_NAMES[name] if name in LEGACY_NAMES else AdminAction(name)).value)
        for number, name in enumerate(old)
    ]
    assert {action for _, action in renamed} <= {a.value for a in AdminAction}

    migrate.downgrade(url, "0002")
    assert _actions(engine) == [(str(number), name) for number, name in enumerate(old)]

    # The append-only rule is back in force after both steps.
    with engine.connect() as conn:
        enabled = conn.execute(
            text("SELECT tgenabled FROM pg_trigger WHERE tgname = 'audit_log_append_only'")
        ).scalar_one()
    assert enabled == "O"


def test_every_admin_action_is_named_area_dot_verb() -> None:
    for action in AdminAction:
        area, _, verb = action.value.partition(".")
        assert area and verb and area.replace("_", "").isalpha() and verb.replace("_", "").isalpha(), action
    assert set(LEGACY_NAMES.values()) <= set(AdminAction)
