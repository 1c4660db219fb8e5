"""Monthly partitions of prompt_executions, made by krowoc_ensure_execution_partitions(date, n)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError


def partitions(conn: Connection) -> dict[str, str]:
    """Map each partition of prompt_executions to its bounds, written in UTC."""
    conn.execute(text("SET TimeZone = 'UTC'"))
    rows = conn.execute(
        text(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits AS i "
            "JOIN pg_class AS c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'prompt_executions'::regclass ORDER BY 1"
        )
    ).all()
    return {name: bound for name, bound in rows}


def ensure(conn: Connection, first: date, months: int) -> int:
    return int(
        conn.execute(
            text("SELECT krowoc_ensure_execution_partitions(:first, :months)"),
            {"first": first, "months": months},
        ).scalar_one()
    )


def insert_execution(conn: Connection, execution_id: int, created_at: datetime) -> str:
    """Insert one execution and returns the name of the partition that holds it."""
    return str(
        conn.execute(
            text(
                "INSERT INTO prompt_executions (id, created_at, user_id, prompt_id, provider, model, status, "
                "request_id) VALUES (:id, :at, 1, 1, 'openai', 'gpt-4o', 'succeeded', 'req') "
                "RETURNING tableoid::regclass::text"
            ),
            {"id": execution_id, "at": created_at},
        ).scalar_one()
    )


def test_first_migration_makes_this_month_and_the_next_three(migrated_engine: Engine) -> None:
    with migrated_engine.connect() as conn:
        month = conn.execute(text("SELECT date_trunc('month', now() AT TIME ZONE 'UTC')::date")).scalar_one()
        names = list(partitions(conn))
    expected = []
    for _ in range(4):
        expected.append(f"prompt_executions_p{month:%Y%m}")
        month = (month + timedelta(days=32)).replace(day=1)
    assert names == expected


def test_ensure_creates_monthly_partitions_on_utc_month_bounds(migrated_engine: Engine) -> None:
    with migrated_engine.begin() as conn:
        assert ensure(conn, date(2031, 1, 15), 3) == 3  # any day of the month names that month
        made = {k: v for k, v in partitions(conn).items() if k.startswith("prompt_executions_p2031")}
    bounds = "FOR VALUES FROM ('{}-01 00:00:00+00') TO ('{}-01 00:00:00+00')"
    assert made == {
        "prompt_executions_p203101": bounds.format("2031-01", "2031-02"),
        "prompt_executions_p203102": bounds.format("2031-02", "2031-03"),
        "prompt_executions_p203103": bounds.format("2031-03", "2031-04"),
    }


def test_ensure_is_idempotent(migrated_engine: Engine) -> None:
    with migrated_engine.begin() as conn:
        assert ensure(conn, date(2031, 1, 1), 3) == 3
        before = partitions(conn)
        assert ensure(conn, date(2031, 1, 1), 3) == 0
        assert partitions(conn) == before
        # An overlapping range only adds the months that are missing.
        assert ensure(conn, date(2031, 3, 1), 2) == 1
        assert set(partitions(conn)) - set(before) == {"prompt_executions_p203104"}


@pytest.mark.parametrize("session_zone", ["America/New_York", "Asia/Tokyo"])
def test_bounds_do_not_depend_on_the_session_time_zone(migrated_engine: Engine, session_zone: str) -> None:
    with migrated_engine.begin() as conn:
        conn.execute(text(f"SET TimeZone = '{session_zone}'"))
        assert ensure(conn, date(2032, 1, 1), 2) == 2
        # The last minute of January in UTC is already February in Tokyo; it still belongs to January.
        assert insert_execution(conn, 1, datetime(2032, 1, 31, 23, 30, tzinfo=UTC)) == "prompt_executions_p203201"
        assert insert_execution(conn, 2, datetime(2032, 2, 1, 0, 0, tzinfo=UTC)) == "prompt_executions_p203202"
        assert partitions(conn)["prompt_executions_p203201"] == (
            "FOR VALUES FROM ('2032-01-01 00:00:00+00') TO ('2032-02-01 00:00:00+00')"
        )


def test_rows_route_to_the_partition_of_their_month(migrated_engine: Engine) -> None:
    with migrated_engine.begin() as conn:
        ensure(conn, date(2031, 1, 1), 3)
        cases = {
            datetime(2031, 1, 1, 0, 0, tzinfo=UTC): "prompt_executions_p203101",
            datetime(2031, 1, 31, 23, 59, 59, 999999, tzinfo=UTC): "prompt_executions_p203101",
            datetime(2031, 2, 1, 0, 0, tzinfo=UTC): "prompt_executions_p203102",
            datetime(2031, 3, 15, 12, 0, tzinfo=UTC): "prompt_executions_p203103",
        }
        for execution_id, (created_at, expected) in enumerate(cases.items(), start=1):
            assert insert_execution(conn, execution_id, created_at) == expected
        counts = dict(
            conn.execute(text("SELECT tableoid::regclass::text, count(*) FROM prompt_executions GROUP BY 1")).all()
        )
    assert counts == {
        "prompt_executions_p203101": 2,
        "prompt_executions_p203102": 1,
        "prompt_executions_p203103": 1,
    }


def test_insert_outside_every_partition_fails(migrated_engine: Engine) -> None:
    with migrated_engine.connect() as conn, pytest.raises(IntegrityError) as caught:
        insert_execution(conn, 1, datetime(1999, 6, 1, tzinfo=UTC))
    assert caught.value.orig is not None
    assert caught.value.orig.sqlstate == "23514"  # type: ignore[attr-defined]
    assert "no partition" in str(caught.value.orig)
    with migrated_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM prompt_executions")).scalar_one() == 0
