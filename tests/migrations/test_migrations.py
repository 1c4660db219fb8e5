"""Alembic migrations: one head, upgrade from empty, models equal the DDL, and data survives round trips."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic.script import Script, ScriptDirectory
from sqlalchemy import Connection, Engine, insert, text

from core.adapters import migrate
from core.adapters.tables import metadata

SCRIPTS = ScriptDirectory.from_config(migrate.alembic_config())
# Oldest first.
REVISIONS: list[Script] = list(reversed(list(SCRIPTS.walk_revisions())))

NOW = datetime.now(UTC).replace(microsecond=0)
# A month long before the partitions the first migration creates: its partition comes from
# krowoc_ensure_execution_partitions, as `krowoc-admin partitions ensure` would make it.
OLD_MONTH = datetime(2025, 3, 10, 8, 30, tzinfo=UTC)

SAMPLE: dict[str, list[dict[str, Any]]] = {
    "users": [
        {
            "id": 1,
            "email": "ada@example.com",
            "display_name": "Ada",
            "tier": "pro",
            "status": "active",
            "created_at": OLD_MONTH,
            "last_seen_at": NOW,
        },
        {
            "id": 2,
            "email": "bob@example.com",
            "display_name": "Bob",
            "tier": "free",
            "status": "suspended",
            "created_at": OLD_MONTH,
            "last_seen_at": None,
        },
    ],
    "prompts": [
        {
            "id": 10,
            "owner_id": 1,
            "title": "Summarise a ticket",
            "tags": ["support", "summary"],
            "version": 3,
            "created_at": OLD_MONTH,
            "updated_at": NOW,
        },
    ],
    "prompt_executions": [
        {
            "id": 100,
            "created_at": OLD_MONTH,
            "user_id": 1,
            "prompt_id": 10,
            "provider": "openai",
            "model": "gpt-4o",
            "status": "succeeded",
            "latency_ms": 812,
            "ttfb_ms": 140,
            "input_tokens": 512,
            "output_tokens": 128,
            "cost_usd": "0.004200",
            "score": "0.875",
            "request_id": "req-100",
            "finished_at": OLD_MONTH,
        },
        {
            "id": 101,
            "created_at": NOW,
            "user_id": 2,
            "prompt_id": 10,
            "provider": "anthropic",
            "model": "claude-sonnet",
            "status": "failed",
            "error_category": "provider_rate_limited",
            "error_code": "429",
            "error_message": "Too many requests",
            "latency_ms": 95,
            "ttfb_ms": None,
            "input_tokens": 300,
            "output_tokens": 0,
            "cost_usd": "0",
            "score": None,
            "request_id": "req-101",
            "finished_at": NOW,
        },
    ],
    "execution_payloads": [
        {
            "execution_id": 100,
            "created_at": OLD_MONTH,
            "input_text": "Summarise: the printer is on fire",
            "output_text": "A printer is burning.",
        },
        {"execution_id": 101, "created_at": NOW, "input_text": "Hello", "output_text": None},
    ],
    "execution_rollup_minute": [
        {
            "bucket_start": OLD_MONTH,
            "provider": "openai",
            "model": "gpt-4o",
            "status": "succeeded",
            "error_category": "",
            "executions": 1,
            "latency_count": 1,
            "latency_sum_ms": 812,
            "latency_max_ms": 812,
            "ttfb_count": 1,
            "ttfb_sum_ms": 140,
            "input_tokens": 512,
            "output_tokens": 128,
            "cost_usd": "0.0042",
            "score_count": 1,
            "score_sum": "0.875",
            "latency_buckets": [172],
            "latency_counts": [1],
            "ttfb_buckets": [127],
            "ttfb_counts": [1],
        },
    ],
    "execution_error_hour": [
        {
            "bucket_start": OLD_MONTH.replace(minute=0),
            "provider": provider,
            "model": model,
            "error_category": "provider_unavailable",
            "error_code": "service_unavailable",
            "error_message": "Service temporarily unavailable",
            "executions": 3,
            "last_seen_at": OLD_MONTH,
        }
        # A model's row, its provider's and the platform's, as the refresher keeps them.
        for provider, model in (("openai", "gpt-4o"), ("openai", "*"), ("*", "*"))
    ],
    "execution_latency_hour": [
        {
            "bucket_start": OLD_MONTH.replace(minute=0),
            "provider": "*",
            "model": "*",
            "executions": 2,
            "errors": 1,
            "latency_sum_ms": 1012,
            "cost_usd": Decimal("0.004200"),
            "latency_count": 2,
            "latency_p50": 195.5,
            "latency_p90": 801.2,
            "latency_p95": 801.2,
            "latency_p99": 801.2,
            "ttfb_count": 1,
            "ttfb_p50": 140.3,
            "ttfb_p90": 140.3,
            "ttfb_p95": 140.3,
            "ttfb_p99": 140.3,
            "latency_buckets": [135, 172],
            "latency_counts": [1, 1],
            "ttfb_buckets": [127],
            "ttfb_counts": [1],
        }
    ],
    "execution_rollup_hour": [
        {
            "bucket_start": OLD_MONTH.replace(minute=0),
            "provider": "openai",
            "model": "gpt-4o",
            "status": "succeeded",
            "error_category": "",
            "executions": 1,
            "latency_count": 1,
            "latency_sum_ms": 812,
            "latency_max_ms": 812,
            "ttfb_count": 1,
            "ttfb_sum_ms": 140,
            "input_tokens": 512,
            "output_tokens": 128,
            "cost_usd": "0.0042",
            "score_count": 1,
            "score_sum": "0.875",
            "latency_buckets": [172],
            "latency_counts": [1],
            "ttfb_buckets": [127],
            "ttfb_counts": [1],
        },
    ],
    "leaderboard_snapshots": [
        {
            "computed_at": NOW,
            "subject_type": "user",
            "time_window": "week",
            "rank": 1,
            "subject_id": 1,
            "avg_score": "0.8750",
            "executions": 42,
            "min_executions": 20,
        },
        {
            "computed_at": NOW,
            "subject_type": "prompt",
            "time_window": "all",
            "rank": 1,
            "subject_id": 10,
            "avg_score": "0.8100",
            "executions": 420,
            "min_executions": 50,
        },
    ],
    "audit_log": [
        {
            "id": 1,
            "at": NOW,
            "actor": "sam@krowoc.test",
            "actor_role": "support",
            "action": "user.suspend",
            "target_type": "user",
            "target_id": "2",
            "before": {"status": "active"},
            "after": {"status": "suspended"},
            "reason": "chargeback fraud",
            "request_id": "req-a1",
            "source": "dashboard",
            "outcome": "success",
        },
        {
            "id": 2,
            "at": NOW,
            "actor": "vic@krowoc.test",
            "actor_role": "viewer",
            "action": "user.suspend",
            "target_type": "user",
            "target_id": "1",
            "request_id": "req-a2",
            "source": "cli",
            "outcome": "denied",
            "detail": "The viewer role may not suspend user.",
        },
    ],
    "rollup_watermarks": [
        {"name": "minute", "watermark": NOW, "last_execution_id": 101, "updated_at": NOW},
    ],
}

# How each table's rows are ordered in a snapshot.
ORDER = {
    "users": "id",
    "prompts": "id",
    "prompt_executions": "id",
    "execution_payloads": "execution_id",
    "execution_rollup_minute": "bucket_start, provider, model, status, error_category",
    "execution_rollup_hour": "bucket_start, provider, model, status, error_category",
    "execution_latency_hour": "bucket_start, provider, model",
    "execution_error_hour": "bucket_start, provider, model, error_category, error_code, error_message",
    "leaderboard_snapshots": "computed_at, subject_type, time_window, rank",
    "audit_log": "id",
    "rollup_watermarks": "name",
}


def insert_sample(conn: Connection, tables: set[str]) -> None:
    """Insert the sample rows of ``tables``, making the execution partitions they need first."""
    if "prompt_executions" in tables:
        conn.execute(text("SELECT krowoc_ensure_execution_partitions(:d, 1)"), {"d": OLD_MONTH.date()})
    for name in SAMPLE:
        if name in tables:
            for row in SAMPLE[name]:
                conn.execute(insert(metadata.tables[name]).values(row))


def snapshot(conn: Connection, tables: set[str]) -> dict[str, list[Any]]:
    """Read every row of ``tables`` as JSON (executions with the partition that holds them)."""
    result: dict[str, list[Any]] = {}
    for name in sorted(tables):
        extra = ", tableoid::regclass::text AS partition" if name == "prompt_executions" else ""
        rows = conn.execute(text(f"SELECT to_jsonb(t){extra} FROM {name} AS t ORDER BY {ORDER[name]}")).all()
        result[name] = [tuple(row) for row in rows]
    return result


def existing_tables(conn: Connection) -> set[str]:
    """Names the sample tables that exist now."""
    rows = conn.execute(
        text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename = ANY(:names)"),
        {"names": list(SAMPLE)},
    ).scalars()
    return set(rows)


def test_sample_covers_every_table() -> None:
    assert set(SAMPLE) == set(metadata.tables)


def test_single_head() -> None:
    assert len(migrate.heads()) == 1
    assert migrate.heads() == [REVISIONS[-1].revision]


def test_revision_files_are_date_prefixed() -> None:
    for script in REVISIONS:
        assert re.match(r"^\d{4}_\d{2}_\d{2}[_-]", Path(script.path).name), script.path


def test_revisions_form_one_line_from_base() -> None:
    assert REVISIONS[0].down_revision is None
    for older, newer in itertools.pairwise(REVISIONS):
        assert newer.down_revision == older.revision


def test_upgrade_from_empty(make_database: Callable[..., str], engine_for: Callable[[str], Engine]) -> None:
    url = make_database(empty=True)
    assert migrate.current_revision(url) is None
    migrate.upgrade(url)
    assert migrate.current_revision(url) == migrate.heads()[0]
    with engine_for(url).connect() as conn:
        assert existing_tables(conn) == set(metadata.tables)
        partitions = conn.execute(
            text("SELECT count(*) FROM pg_inherits WHERE inhparent = 'prompt_executions'::regclass")
        ).scalar_one()
        assert partitions == 4  # this month and the next three


def test_models_match_the_ddl(migrated_engine: Engine) -> None:
    with migrated_engine.connect() as conn:
        assert migrate.schema_drift(conn) == []


def test_drift_is_detected(migrated_engine: Engine) -> None:
    """The drift check is not vacuous: a column the models do not know shows up."""
    with migrated_engine.begin() as conn:
        conn.execute(text("ALTER TABLE users ADD COLUMN nickname text"))
        drift = migrate.schema_drift(conn)
    assert [(d[0], d[2], d[3].name) for d in drift] == [("remove_column", "users", "nickname")]


def test_downgrade_to_base_leaves_nothing_behind(
    make_database: Callable[..., str], engine_for: Callable[[str], Engine]
) -> None:
    url = make_database(empty=True)
    migrate.upgrade(url)
    migrate.downgrade(url, "base")
    with engine_for(url).connect() as conn:
        tables = (
            conn.execute(
                text(
                    "SELECT tablename FROM pg_tables "
                    "WHERE schemaname = current_schema() AND tablename <> 'alembic_version'"
                )
            )
            .scalars()
            .all()
        )
        functions = conn.execute(text("SELECT proname FROM pg_proc WHERE proname LIKE 'krowoc%'")).scalars().all()
        sequences = (
            conn.execute(text("SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema()"))
            .scalars()
            .all()
        )
    assert (tables, functions, sequences) == ([], [], [])
    assert migrate.current_revision(url) is None


@pytest.mark.parametrize("revision", REVISIONS, ids=[r.revision for r in REVISIONS])
def test_revision_downgrades_and_upgrades_again_with_data_in_place(
    revision: Script, make_database: Callable[..., str], engine_for: Callable[[str], Engine]
) -> None:
    """From head with a row in every table, step below ``revision`` and back to head.

    Every row in a table that still exists below ``revision`` must come back unchanged (the
    executions in the same partitions). Tables that ``revision`` (or a later one) creates cannot
    keep their rows by nature: they are dropped on the way down and come back empty, and the
    same rows must then be insertable again. With a single revision, stepping below it is base,
    so everything is in the second group.
    """
    url = make_database(empty=True)
    migrate.upgrade(url)
    engine = engine_for(url)
    every = set(SAMPLE)
    with engine.begin() as conn:
        insert_sample(conn, every)
        before = snapshot(conn, every)
    assert all(len(before[name]) == len(SAMPLE[name]) for name in every)

    migrate.downgrade(url, revision.down_revision or "base")  # type: ignore[arg-type]
    with engine.connect() as conn:
        kept = existing_tables(conn)
    migrate.upgrade(url)

    lost = every - kept
    with engine.begin() as conn:
        after = snapshot(conn, every)
        for name in kept:
            assert after[name] == before[name], name
        for name in lost:
            assert after[name] == [], f"{name} was dropped and should come back empty"
        insert_sample(conn, lost)
        again = snapshot(conn, lost)
    for name in lost:
        assert again[name] == before[name], name
    with engine.connect() as conn:
        assert migrate.schema_drift(conn) == []
