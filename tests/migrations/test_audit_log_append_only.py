"""The audit log is append-only in the database itself: UPDATE, DELETE and TRUNCATE are refused."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

ROW = (
    "INSERT INTO audit_log (actor, actor_role, action, target_type, target_id, request_id, source, outcome) "
    "VALUES ('sam@krowoc.test', 'support', 'user.suspend', 'user', '42', 'req-1', 'cli', 'success')"
)


def _rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text("SELECT id, actor, outcome, target_id FROM audit_log"))]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET outcome = 'denied'",
        "UPDATE audit_log SET reason = 'edited later' WHERE id = -1",  # refused even when it matches nothing
        "DELETE FROM audit_log",
        "DELETE FROM audit_log WHERE target_id = '42'",
        "TRUNCATE audit_log",
    ],
)
def test_changing_or_removing_audit_rows_is_refused(migrated_engine: Engine, statement: str) -> None:
    with migrated_engine.begin() as conn:
        conn.execute(text(ROW))
    before = _rows(migrated_engine)
    with migrated_engine.begin() as conn, pytest.raises(DBAPIError) as caught:
        conn.execute(text(statement))
    assert caught.value.orig is not None
    assert caught.value.orig.sqlstate == "42501"  # type: ignore[attr-defined]
    assert "audit_log is append-only" in str(caught.value.orig)
    assert _rows(migrated_engine) == before


def test_inserting_still_works(migrated_engine: Engine) -> None:
    with migrated_engine.begin() as conn:
        conn.execute(text(ROW))
        conn.execute(text(ROW))
    assert [r[1:] for r in _rows(migrated_engine)] == [("sam@krowoc.test", "success", "42")] * 2
