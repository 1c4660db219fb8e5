"""The incremental refresher: the rollups always equal a from-scratch aggregation of the raw table.

After any sequence of inserts and refreshes the rollups equal a from-scratch aggregation of the
raw table; two refreshers never run at once.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg

from core.adapters.db import Database, libpq_url
from core.executions import refresh as rollups_refresh
from core.executions import rollups
from core.executions.records import write_executions
from tests.support.operate import random_records

TABLES = {
    "execution_rollup_minute": "bucket_start, provider, model, status, error_category",
    "execution_rollup_hour": "bucket_start, provider, model, status, error_category",
    "execution_latency_hour": "bucket_start, provider, model",
    "execution_error_hour": "bucket_start, provider, model, error_category, error_code, error_message",
}


def _snapshot(conn: psycopg.Connection) -> dict[str, list[tuple[object, ...]]]:
    return {
        table: [tuple(row) for row in conn.execute(f"SELECT * FROM {table} ORDER BY {keys}").fetchall()]
        for table, keys in TABLES.items()
    }


def _from_scratch(url: str) -> dict[str, list[tuple[object, ...]]]:
    """Rebuild everything from the raw table in a transaction that is rolled back, and read it."""
    with psycopg.connect(libpq_url(url)) as conn, conn.transaction(force_rollback=True):
        rollups.rebuild_in(conn)
        conn.execute("TRUNCATE execution_error_hour")
        rollups_refresh.rebuild_error_hours(conn, rollups.FAR_PAST, rollups.FAR_FUTURE)
        return _snapshot(conn)


def _current(url: str) -> dict[str, list[tuple[object, ...]]]:
    with psycopg.connect(libpq_url(url)) as conn:
        return _snapshot(conn)


def _ensure_partitions(url: str, since: datetime) -> None:
    with psycopg.connect(libpq_url(url)) as conn:
        conn.execute("SELECT krowoc_ensure_execution_partitions(%s::date, 3)", (since.date().replace(day=1),))
        conn.commit()


def test_refreshes_between_inserts_equal_a_rebuild_from_scratch(make_database: Callable[..., str]) -> None:
    url = make_database()
    now = datetime.now(UTC).replace(microsecond=0)
    _ensure_partitions(url, now - timedelta(days=3))
    db = Database.from_urls(url)
    rng = random.Random(5)
    reports = []
    try:
        for round_ in range(5):
            # Fresh traffic in the last hours, plus a few executions arriving late for days ago.
            fresh = random_records(rng, 400, now - timedelta(hours=3), timedelta(hours=3))
            late = random_records(rng, 20 * round_, now - timedelta(days=2), timedelta(hours=5))
            with db.write() as conn:
                write_executions(conn, fresh + late)
            reports.append(rollups_refresh.refresh(url))
            if round_ == 2:
                reports.append(rollups_refresh.refresh(url))  # a second run in a row changes nothing
        assert _current(url) == _from_scratch(url)
    finally:
        db.dispose()
    assert sum(r.new_executions for r in reports) == 5 * 400 + 20 * (0 + 1 + 2 + 3 + 4)
    assert reports[3].new_executions == 0 and not reports[3].skipped
    assert all(len(rows) > 0 for rows in _current(url).values())


def test_a_late_execution_lands_in_its_old_minute(make_database: Callable[..., str]) -> None:
    url = make_database()
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    _ensure_partitions(url, now - timedelta(days=2))
    db = Database.from_urls(url)
    try:
        rng = random.Random(9)
        with db.write() as conn:
            write_executions(conn, random_records(rng, 50, now - timedelta(minutes=10), timedelta(minutes=5)))
        rollups_refresh.refresh(url)
        old_minute = now - timedelta(days=1, hours=2)
        with db.write() as conn:
            write_executions(conn, random_records(rng, 3, old_minute, timedelta(seconds=30)))
        report = rollups_refresh.refresh(url)
        with psycopg.connect(libpq_url(url)) as conn:
            row = conn.execute(
                "SELECT sum(executions) FROM execution_rollup_minute WHERE bucket_start = %s", (old_minute,)
            ).fetchone()
    finally:
        db.dispose()
    assert report.new_executions == 3
    assert row is not None and row[0] == 3


def test_a_second_refresher_skips_while_the_first_holds_the_lock(make_database: Callable[..., str]) -> None:
    url = make_database()
    with psycopg.connect(libpq_url(url)) as holder, holder.transaction():
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (rollups_refresh.LOCK_KEY,))
        second = rollups_refresh.refresh(url)
    assert second.skipped
    assert "Another refresher" in second.describe()
    assert not rollups_refresh.refresh(url).skipped


def test_an_execution_committed_after_a_later_one_is_still_folded(make_database: Callable[..., str]) -> None:
    """Two writers: the first takes a lower id but commits after a refresh has passed the second's."""
    url = make_database()
    now = datetime.now(UTC).replace(microsecond=0)
    _ensure_partitions(url, now - timedelta(days=1))
    db = Database.from_urls(url)
    rng = random.Random(21)
    try:
        slow = db.primary.connect()
        slow_tx = slow.begin()
        write_executions(slow, random_records(rng, 5, now - timedelta(minutes=30), timedelta(minutes=1)))
        with db.write() as conn:
            write_executions(conn, random_records(rng, 50, now - timedelta(minutes=5), timedelta(minutes=2)))
        first = rollups_refresh.refresh(url)
        slow_tx.commit()
        slow.close()
        rollups_refresh.refresh(url)
        assert _current(url) == _from_scratch(url)
    finally:
        db.dispose()
    assert first.new_executions == 50


def test_a_late_commit_into_a_minute_that_also_gets_new_executions_is_counted(
    make_database: Callable[..., str],
) -> None:
    """The late rows share their minute with rows newer than the watermark: errors are recounted too."""
    url = make_database()
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=20)
    _ensure_partitions(url, minute - timedelta(days=1))
    db = Database.from_urls(url)
    rng = random.Random(33)
    try:
        slow = db.primary.connect()
        slow_tx = slow.begin()
        write_executions(slow, random_records(rng, 60, minute, timedelta(seconds=50)))
        with db.write() as conn:
            write_executions(conn, random_records(rng, 40, minute, timedelta(seconds=50)))
        rollups_refresh.refresh(url)
        slow_tx.commit()
        slow.close()
        with db.write() as conn:
            write_executions(conn, random_records(rng, 40, minute, timedelta(seconds=50)))
        rollups_refresh.refresh(url)
        assert _current(url) == _from_scratch(url)
    finally:
        db.dispose()


def test_a_rebuild_between_refreshes_loses_nothing(make_database: Callable[..., str]) -> None:
    url = make_database()
    now = datetime.now(UTC).replace(microsecond=0)
    _ensure_partitions(url, now - timedelta(days=1))
    db = Database.from_urls(url)
    rng = random.Random(44)
    try:
        for step in ("refresh", "rebuild", "refresh"):
            with db.write() as conn:
                write_executions(conn, random_records(rng, 150, now - timedelta(hours=2), timedelta(hours=2)))
            if step == "rebuild":
                rollups.rebuild(url)
            else:
                rollups_refresh.refresh(url)
        assert _current(url) == _from_scratch(url)
    finally:
        db.dispose()
