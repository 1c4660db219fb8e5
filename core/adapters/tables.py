"""SQLAlchemy 2.0 tables for the whole data model; Alembic's migrations create the same DDL."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Float,
    Index,
    Integer,
    MetaData,
    Numeric,
    Sequence,
    SmallInteger,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TIMESTAMP
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.domain.models import AuditOutcome, AuditSource, ErrorCategory, ExecutionStatus, Role, Tier, UserStatus

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Timestamp = TIMESTAMP(timezone=True)
EXECUTION_PARTITION_PREFIX = "prompt_executions_p"


def _in(column: str, values: list[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


USER_TIERS = [tier.value for tier in Tier]
USER_STATUSES = [status.value for status in UserStatus]
EXECUTION_STATUSES = [status.value for status in ExecutionStatus]
ERROR_CATEGORIES = [category.value for category in ErrorCategory]
ROLES = [role.value for role in Role]
OUTCOMES = [outcome.value for outcome in AuditOutcome]
SOURCES = [source.value for source in AuditSource]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UserRow(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(_in("tier", USER_TIERS), name="tier"),
        CheckConstraint(_in("status", USER_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    tier: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), server_default=UserStatus.ACTIVE.value)
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=text("now()"))
    last_seen_at: Mapped[datetime | None] = mapped_column(Timestamp)


# Prefix search by email or name (support's "find a user").
Index(
    "ix_users_email_lower",
    func.lower(UserRow.email).label("email_lower"),
    postgresql_ops={"email_lower": "text_pattern_ops"},
)
Index(
    "ix_users_display_name_lower",
    func.lower(UserRow.display_name).label("name_lower"),
    postgresql_ops={"name_lower": "text_pattern_ops"},
)


class PromptRow(Base):
    __tablename__ = "prompts"
    __table_args__ = (Index("ix_prompts_owner_id", "owner_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    owner_id: Mapped[int] = mapped_column(BigInteger)
    title: Mapped[str] = mapped_column(String(300))
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'::text[]"))
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    created_at: Mapped[datetime] = mapped_column(Timestamp, server_default=text("now()"))
    updated_at: Mapped[datetime] = mapped_column(Timestamp, server_default=text("now()"))


execution_id_seq = Sequence("prompt_executions_id_seq", metadata=Base.metadata)


class ExecutionRow(Base):
    """One prompt execution; range-partitioned by month on ``created_at``."""

    __tablename__ = "prompt_executions"
    __table_args__ = (
        CheckConstraint(_in("status", EXECUTION_STATUSES), name="status"),
        CheckConstraint(f"error_category IS NULL OR {_in('error_category', ERROR_CATEGORIES)}", name="error_category"),
        CheckConstraint("score IS NULL OR (score >= 0 AND score <= 1)", name="score"),
        Index("ix_prompt_executions_user_id_created_at", "user_id", text("created_at DESC")),
        Index("ix_prompt_executions_created_at_brin", "created_at", postgresql_using="brin"),
        Index("ix_prompt_executions_request_id", "request_id"),
        Index("ix_prompt_executions_latency_ms", text("latency_ms DESC"), "created_at"),
        Index("ix_prompt_executions_error_category_created_at", "error_category", "created_at"),
        {"postgresql_partition_by": "RANGE (created_at)"},
    )

    id: Mapped[int] = mapped_column(
        BigInteger, execution_id_seq, primary_key=True, server_default=execution_id_seq.next_value()
    )
    created_at: Mapped[datetime] = mapped_column(Timestamp, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger)
    prompt_id: Mapped[int] = mapped_column(BigInteger)
    provider: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    error_category: Mapped[str | None] = mapped_column(String(32))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(String(500))
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    ttfb_ms: Mapped[int | None] = mapped_column(Integer)
    input_tokens: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    output_tokens: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(12, 6), server_default=text("0"))
    score: Mapped[float | None] = mapped_column(Numeric(4, 3))
    request_id: Mapped[str] = mapped_column(String(64))
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)


class ExecutionPayloadRow(Base):
    """The input and output of an execution, kept apart: large and personal; reading one is audited."""

    __tablename__ = "execution_payloads"

    execution_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    input_text: Mapped[str] = mapped_column(Text)
    output_text: Mapped[str | None] = mapped_column(Text)


class _RollupMixin:
    """Per time bucket x provider x model x status x error category ('' when none)."""

    bucket_start: Mapped[datetime] = mapped_column(Timestamp, primary_key=True)
    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    model: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    error_category: Mapped[str] = mapped_column(String(32), primary_key=True)
    executions: Mapped[int] = mapped_column(BigInteger)
    latency_count: Mapped[int] = mapped_column(BigInteger)
    latency_sum_ms: Mapped[int] = mapped_column(BigInteger)
    latency_max_ms: Mapped[int | None] = mapped_column(Integer)
    ttfb_count: Mapped[int] = mapped_column(BigInteger)
    ttfb_sum_ms: Mapped[int] = mapped_column(BigInteger)
    input_tokens: Mapped[int] = mapped_column(BigInteger)
    output_tokens: Mapped[int] = mapped_column(BigInteger)
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(16, 6))
    score_count: Mapped[int] = mapped_column(BigInteger)
    score_sum: Mapped[Decimal] = mapped_column(Numeric(16, 3))
    # Sparse latency histograms: parallel arrays of bucket index (see core.domain.histogram) and count.
    latency_buckets: Mapped[list[int]] = mapped_column(ARRAY(SmallInteger))
    latency_counts: Mapped[list[int]] = mapped_column(ARRAY(Integer))
    ttfb_buckets: Mapped[list[int]] = mapped_column(ARRAY(SmallInteger))
    ttfb_counts: Mapped[list[int]] = mapped_column(ARRAY(Integer))


class MinuteRollupRow(_RollupMixin, Base):
    __tablename__ = "execution_rollup_minute"
    __table_args__ = (
        Index(
            "ix_execution_rollup_minute_counts",
            "bucket_start",
            "error_category",
            "provider",
            "model",
            postgresql_include=["executions"],
        ),
    )


class HourRollupRow(_RollupMixin, Base):
    __tablename__ = "execution_rollup_hour"
    __table_args__ = (
        Index(
            "ix_execution_rollup_hour_counts",
            "bucket_start",
            "error_category",
            "provider",
            "model",
            postgresql_include=["executions"],
        ),
    )


class LatencyHourRow(Base):
    """Per hour and series: merged latency and TTFB histograms, their percentiles, and errors per category.

    One row per hour x provider x model, with '*' rows for all models of a provider and for the
    platform: the merged latency and TTFB histograms and their p50/p90/p95/p99 (see
    ``core.domain.histogram``), and the errors per category.

    Derived from ``execution_rollup_hour`` so long-range charts read one row per series and hour
    (volume, errors, cost and latency) instead of summing and merging across statuses and error
    categories at read time.
    """

    __tablename__ = "execution_latency_hour"
    __table_args__ = (
        Index(
            "ix_execution_latency_hour_quantiles",
            "bucket_start",
            "provider",
            "model",
            postgresql_include=[
                *(f"latency_{q}" for q in ("count", "p50", "p90", "p95", "p99")),
                *(f"ttfb_{q}" for q in ("count", "p50", "p90", "p95", "p99")),
            ],
        ),
    )

    bucket_start: Mapped[datetime] = mapped_column(Timestamp, primary_key=True)
    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    model: Mapped[str] = mapped_column(String(64), primary_key=True)
    executions: Mapped[int] = mapped_column(BigInteger)
    errors: Mapped[int] = mapped_column(BigInteger)
    latency_sum_ms: Mapped[int] = mapped_column(BigInteger)
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(16, 6))
    latency_count: Mapped[int] = mapped_column(BigInteger)
    latency_p50: Mapped[float | None] = mapped_column(Float)
    latency_p90: Mapped[float | None] = mapped_column(Float)
    latency_p95: Mapped[float | None] = mapped_column(Float)
    latency_p99: Mapped[float | None] = mapped_column(Float)
    ttfb_count: Mapped[int] = mapped_column(BigInteger)
    ttfb_p50: Mapped[float | None] = mapped_column(Float)
    ttfb_p90: Mapped[float | None] = mapped_column(Float)
    ttfb_p95: Mapped[float | None] = mapped_column(Float)
    ttfb_p99: Mapped[float | None] = mapped_column(Float)
    latency_buckets: Mapped[list[int]] = mapped_column(ARRAY(SmallInteger))
    latency_counts: Mapped[list[int]] = mapped_column(ARRAY(Integer))
    ttfb_buckets: Mapped[list[int]] = mapped_column(ARRAY(SmallInteger))
    ttfb_counts: Mapped[list[int]] = mapped_column(ARRAY(Integer))
    # The hour's errors per category, as parallel arrays sorted by category (none: both empty), so
    # the error rate by category of a long range reads one row per hour and series.
    error_categories: Mapped[list[str]] = mapped_column(ARRAY(String(32)), server_default=text("'{}'"))
    error_counts: Mapped[list[int]] = mapped_column(ARRAY(BigInteger), server_default=text("'{}'"))


class ErrorHourRow(Base):
    """Per hour, series and distinct error: how many executions failed so.

    One row per hour x provider x model x error category x code x message, with '*' rows for all
    models of a provider and for the platform.

    Kept by ``core.executions.refresh`` so the top errors of a long range read one row per distinct
    error and hour instead of scanning the failed executions; the series index lets a range read
    only its series' rows (the platform's, unfiltered) without visiting the table.
    """

    __tablename__ = "execution_error_hour"
    __table_args__ = (
        Index(
            "ix_execution_error_hour_series",
            "provider",
            "model",
            "bucket_start",
            postgresql_include=["error_category", "error_code", "error_message", "executions", "last_seen_at"],
        ),
    )

    bucket_start: Mapped[datetime] = mapped_column(Timestamp, primary_key=True)
    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    model: Mapped[str] = mapped_column(String(64), primary_key=True)
    error_category: Mapped[str] = mapped_column(String(32), primary_key=True)
    error_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    error_message: Mapped[str] = mapped_column(String(500), primary_key=True)
    executions: Mapped[int] = mapped_column(BigInteger)
    last_seen_at: Mapped[datetime] = mapped_column(Timestamp)


class RollupWatermarkRow(Base):
    """How far each rollup has folded the raw table in (used by the incremental refresher)."""

    __tablename__ = "rollup_watermarks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    watermark: Mapped[datetime] = mapped_column(Timestamp)
    last_execution_id: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    updated_at: Mapped[datetime] = mapped_column(Timestamp, server_default=text("now()"))


class LeaderboardSnapshotRow(Base):
    __tablename__ = "leaderboard_snapshots"
    __table_args__ = (
        Index("ix_leaderboard_snapshots_latest", "subject_type", "time_window", text("computed_at DESC")),
        CheckConstraint("subject_type IN ('user', 'prompt')", name="subject_type"),
        CheckConstraint("time_window IN ('day', 'week', 'all')", name="time_window"),
    )

    computed_at: Mapped[datetime] = mapped_column(Timestamp, primary_key=True)
    subject_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    time_window: Mapped[str] = mapped_column(String(8), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject_id: Mapped[int] = mapped_column(BigInteger)
    avg_score: Mapped[Decimal] = mapped_column(Numeric(6, 4))
    executions: Mapped[int] = mapped_column(BigInteger)
    min_executions: Mapped[int] = mapped_column(Integer)


class AuditLogRow(Base):
    """Append-only: a trigger rejects UPDATE, DELETE and TRUNCATE; another chains every row by hash.

    ``hash`` is the SHA-256 of the previous row's hash and this row's canonical content, set by the
    ``audit_log_chain`` trigger (migration 0004), which also gives the row its id under the chain's
    lock: the ids follow the chain. An action whose effect lies outside the database is recorded
    first as ``pending``; its outcome row names it in ``intent_id``.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        CheckConstraint(_in("actor_role", ROLES), name="actor_role"),
        CheckConstraint(_in("outcome", OUTCOMES), name="outcome"),
        CheckConstraint(_in("source", SOURCES), name="source"),
        Index("ix_audit_log_at", text("at DESC")),
        Index("ix_audit_log_actor_at", "actor", text("at DESC")),
        Index("ix_audit_log_target", "target_type", "target_id", text("at DESC")),
        Index("ix_audit_log_intent_id", "intent_id", postgresql_where=text("intent_id IS NOT NULL")),
        Index("ix_audit_log_pending", "at", postgresql_where=text("outcome = 'pending'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(Timestamp, server_default=text("now()"))
    actor: Mapped[str] = mapped_column(String(200))
    actor_role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(200))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    reason: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(Text)
    intent_id: Mapped[int | None] = mapped_column(BigInteger)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str | None] = mapped_column(String(64))


metadata = Base.metadata
