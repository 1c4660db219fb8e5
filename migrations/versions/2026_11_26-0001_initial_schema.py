"""Initial schema: users, prompts, partitioned executions, payloads, rollups, leaderboards, audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-26 04:47:13.247297+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


PARTITION_FUNCTION = """
CREATE FUNCTION krowoc_ensure_execution_partitions(first_month date, months integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    month_start date := date_trunc('month', first_month)::date;
    created integer := 0;
    name text;
BEGIN
    FOR i IN 0 .. months - 1 LOOP
        name := format('prompt_executions_p%s', to_char(month_start, 'YYYYMM'));
        IF to_regclass(name) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF prompt_executions FOR VALUES FROM (%L) TO (%L)',
                name, month_start::timestamp AT TIME ZONE 'UTC',
                (month_start + interval '1 month')::timestamp AT TIME ZONE 'UTC');
            created := created + 1;
        END IF;
        month_start := (month_start + interval '1 month')::date;
    END LOOP;
    RETURN created;
END $$;
"""

AUDIT_APPEND_ONLY = """
CREATE FUNCTION krowoc_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION krowoc_audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION krowoc_audit_log_append_only();
"""


def upgrade() -> None:
    op.execute(sa.schema.CreateSequence(sa.Sequence("prompt_executions_id_seq")))
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("at", postgresql.TIMESTAMP(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("actor_role", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_type", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=200), nullable=False),
        sa.Column("before", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("after", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "actor_role IN ('viewer', 'support', 'operator', 'product', 'admin')",
            name=op.f("ck_audit_log_actor_role"),
        ),
        sa.CheckConstraint("outcome IN ('success', 'denied', 'failed', 'invalid')", name=op.f("ck_audit_log_outcome")),
        sa.CheckConstraint("source IN ('dashboard', 'cli', 'api')", name=op.f("ck_audit_log_source")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_actor_at", "audit_log", ["actor", sa.literal_column("at DESC")], unique=False)
    op.create_index("ix_audit_log_at", "audit_log", [sa.literal_column("at DESC")], unique=False)
    op.create_index(
        "ix_audit_log_target",
        "audit_log",
        ["target_type", "target_id", sa.literal_column("at DESC")],
        unique=False,
    )
    op.create_table(
        "execution_payloads",
        sa.Column("execution_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("input_text", sa.Text(), nullable=False),
        sa.Column("output_text", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("execution_id", name=op.f("pk_execution_payloads")),
    )
    op.create_table(
        "execution_rollup_hour",
        sa.Column("bucket_start", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_category", sa.String(length=32), nullable=False),
        sa.Column("executions", sa.BigInteger(), nullable=False),
        sa.Column("latency_count", sa.BigInteger(), nullable=False),
        sa.Column("latency_sum_ms", sa.BigInteger(), nullable=False),
        sa.Column("latency_max_ms", sa.Integer(), nullable=True),
        sa.Column("ttfb_count", sa.BigInteger(), nullable=False),
        sa.Column("ttfb_sum_ms", sa.BigInteger(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", sa.Numeric(precision=16, scale=6), nullable=False),
        sa.Column("score_count", sa.BigInteger(), nullable=False),
        sa.Column("score_sum", sa.Numeric(precision=16, scale=3), nullable=False),
        sa.Column("latency_buckets", postgresql.ARRAY(sa.SmallInteger()), nullable=False),
        sa.Column("latency_counts", postgresql.ARRAY(sa.Integer()), nullable=False),
        sa.Column("ttfb_buckets", postgresql.ARRAY(sa.SmallInteger()), nullable=False),
        sa.Column("ttfb_counts", postgresql.ARRAY(sa.Integer()), nullable=False),
        sa.PrimaryKeyConstraint(
            "bucket_start",
            "provider",
            "model",
            "status",
            "error_category",
            name=op.f("pk_execution_rollup_hour"),
        ),
    )
    op.create_table(
        "execution_rollup_minute",
        sa.Column("bucket_start", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_category", sa.String(length=32), nullable=False),
        sa.Column("executions", sa.BigInteger(), nullable=False),
        sa.Column("latency_count", sa.BigInteger(), nullable=False),
        sa.Column("latency_sum_ms", sa.BigInteger(), nullable=False),
        sa.Column("latency_max_ms", sa.Integer(), nullable=True),
        sa.Column("ttfb_count", sa.BigInteger(), nullable=False),
        sa.Column("ttfb_sum_ms", sa.BigInteger(), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", sa.Numeric(precision=16, scale=6), nullable=False),
        sa.Column("score_count", sa.BigInteger(), nullable=False),
        sa.Column("score_sum", sa.Numeric(precision=16, scale=3), nullable=False),
        sa.Column("latency_buckets", postgresql.ARRAY(sa.SmallInteger()), nullable=False),
        sa.Column("latency_counts", postgresql.ARRAY(sa.Integer()), nullable=False),
        sa.Column("ttfb_buckets", postgresql.ARRAY(sa.SmallInteger()), nullable=False),
        sa.Column("ttfb_counts", postgresql.ARRAY(sa.Integer()), nullable=False),
        sa.PrimaryKeyConstraint(
            "bucket_start",
            "provider",
            "model",
            "status",
            "error_category",
            name=op.f("pk_execution_rollup_minute"),
        ),
    )
    op.create_table(
        "execution_latency_hour",
        sa.Column("bucket_start", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("executions", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("latency_sum_ms", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", sa.Numeric(precision=16, scale=6), nullable=False),
        sa.Column("latency_count", sa.BigInteger(), nullable=False),
        sa.Column("latency_p50", sa.Float(), nullable=True),
        sa.Column("latency_p90", sa.Float(), nullable=True),
        sa.Column("latency_p95", sa.Float(), nullable=True),
        sa.Column("latency_p99", sa.Float(), nullable=True),
        sa.Column("ttfb_count", sa.BigInteger(), nullable=False),
        sa.Column("ttfb_p50", sa.Float(), nullable=True),
        sa.Column("ttfb_p90", sa.Float(), nullable=True),
        sa.Column("ttfb_p95", sa.Float(), nullable=True),
        sa.Column("ttfb_p99", sa.Float(), nullable=True),
        sa.Column("latency_buckets", postgresql.ARRAY(sa.SmallInteger()), nullable=False),
        sa.Column("latency_counts", postgresql.ARRAY(sa.Integer()), nullable=False),
        sa.Column("ttfb_buckets", postgresql.ARRAY(sa.SmallInteger()), nullable=False),
        sa.Column("ttfb_counts", postgresql.ARRAY(sa.Integer()), nullable=False),
        sa.PrimaryKeyConstraint("bucket_start", "provider", "model", name=op.f("pk_execution_latency_hour")),
    )
    op.create_table(
        "leaderboard_snapshots",
        sa.Column("computed_at", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("subject_type", sa.String(length=16), nullable=False),
        sa.Column("time_window", sa.String(length=8), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.BigInteger(), nullable=False),
        sa.Column("avg_score", sa.Numeric(precision=6, scale=4), nullable=False),
        sa.Column("executions", sa.BigInteger(), nullable=False),
        sa.Column("min_executions", sa.Integer(), nullable=False),
        sa.CheckConstraint("subject_type IN ('user', 'prompt')", name=op.f("ck_leaderboard_snapshots_subject_type")),
        sa.CheckConstraint("time_window IN ('day', 'week', 'all')", name=op.f("ck_leaderboard_snapshots_time_window")),
        sa.PrimaryKeyConstraint(
            "computed_at", "subject_type", "time_window", "rank", name=op.f("pk_leaderboard_snapshots")
        ),
    )
    op.create_index(
        "ix_leaderboard_snapshots_latest",
        "leaderboard_snapshots",
        ["subject_type", "time_window", sa.literal_column("computed_at DESC")],
        unique=False,
    )
    op.create_table(
        "prompt_executions",
        sa.Column(
            "id",
            sa.BigInteger(),
            server_default=sa.text("nextval('prompt_executions_id_seq')"),
            nullable=False,
        ),
        sa.Column("created_at", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("prompt_id", sa.BigInteger(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_category", sa.String(length=32), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.String(length=500), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("ttfb_ms", sa.Integer(), nullable=True),
        sa.Column("input_tokens", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("output_tokens", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("cost_usd", sa.Numeric(precision=12, scale=6), server_default=sa.text("0"), nullable=False),
        sa.Column("score", sa.Numeric(precision=4, scale=3), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("finished_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.CheckConstraint(
            "error_category IS NULL OR error_category IN ('provider_timeout', 'provider_rate_limited', 'provider_unavailable', 'provider_auth', 'invalid_request', 'content_filtered', 'context_length_exceeded', 'quota_exceeded', 'internal')",
            name=op.f("ck_prompt_executions_error_category"),
        ),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'timed_out')",
            name=op.f("ck_prompt_executions_status"),
        ),
        sa.CheckConstraint("score IS NULL OR (score >= 0 AND score <= 1)", name=op.f("ck_prompt_executions_score")),
        sa.PrimaryKeyConstraint("id", "created_at", name=op.f("pk_prompt_executions")),
        postgresql_partition_by="RANGE (created_at)",
    )
    op.create_index(
        "ix_prompt_executions_created_at_brin",
        "prompt_executions",
        ["created_at"],
        unique=False,
        postgresql_using="brin",
    )
    op.create_index("ix_prompt_executions_request_id", "prompt_executions", ["request_id"], unique=False)
    op.create_index(
        "ix_prompt_executions_user_id_created_at",
        "prompt_executions",
        ["user_id", sa.literal_column("created_at DESC")],
        unique=False,
    )
    op.create_index(
        "ix_prompt_executions_latency_ms",
        "prompt_executions",
        [sa.literal_column("latency_ms DESC"), "created_at"],
        unique=False,
    )
    op.create_index(
        "ix_prompt_executions_error_category_created_at",
        "prompt_executions",
        ["error_category", "created_at"],
        unique=False,
    )
    # The latency charts read the hourly quantiles from this index alone, not the rows' histograms.
    op.create_index(
        "ix_execution_latency_hour_quantiles",
        "execution_latency_hour",
        ["bucket_start", "provider", "model"],
        unique=False,
        postgresql_include=[
            "latency_count",
            "latency_p50",
            "latency_p90",
            "latency_p95",
            "latency_p99",
            "ttfb_count",
            "ttfb_p50",
            "ttfb_p90",
            "ttfb_p95",
            "ttfb_p99",
        ],
    )
    for grain in ("minute", "hour"):
        # Counts by bucket and error category read from this index alone, not the wide rows.
        op.create_index(
            f"ix_execution_rollup_{grain}_counts",
            f"execution_rollup_{grain}",
            ["bucket_start", "error_category", "provider", "model"],
            unique=False,
            postgresql_include=["executions"],
        )
    op.create_table(
        "execution_error_hour",
        sa.Column("bucket_start", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("error_category", sa.String(length=32), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=False),
        sa.Column("error_message", sa.String(length=500), nullable=False),
        sa.Column("executions", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_at", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "bucket_start",
            "provider",
            "model",
            "error_category",
            "error_code",
            "error_message",
            name=op.f("pk_execution_error_hour"),
        ),
    )
    op.create_table(
        "prompts",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("owner_id", sa.BigInteger(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("tags", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'::text[]"), nullable=False),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("created_at", postgresql.TIMESTAMP(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", postgresql.TIMESTAMP(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompts")),
    )
    op.create_index("ix_prompts_owner_id", "prompts", ["owner_id"], unique=False)
    op.create_table(
        "rollup_watermarks",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("watermark", postgresql.TIMESTAMP(timezone=True), nullable=False),
        sa.Column("last_execution_id", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("updated_at", postgresql.TIMESTAMP(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_rollup_watermarks")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("tier", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="active", nullable=False),
        sa.Column("created_at", postgresql.TIMESTAMP(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("last_seen_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('active', 'suspended')", name=op.f("ck_users_status")),
        sa.CheckConstraint("tier IN ('free', 'pro', 'team', 'enterprise')", name=op.f("ck_users_tier")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_index(
        "ix_users_display_name_lower",
        "users",
        [sa.func.lower(sa.column("display_name")).label("name_lower")],
        unique=False,
        postgresql_ops={"name_lower": "text_pattern_ops"},
    )
    op.create_index(
        "ix_users_email_lower",
        "users",
        [sa.func.lower(sa.column("email")).label("email_lower")],
        unique=False,
        postgresql_ops={"email_lower": "text_pattern_ops"},
    )
    op.execute(AUDIT_APPEND_ONLY)
    op.execute(PARTITION_FUNCTION)
    # The current month and the next three; `krowoc-admin partitions ensure` creates more ahead.
    op.execute("SELECT krowoc_ensure_execution_partitions((now() AT TIME ZONE 'UTC')::date, 4)")


def downgrade() -> None:
    op.execute("DROP FUNCTION krowoc_ensure_execution_partitions(date, integer)")
    op.execute("DROP TRIGGER audit_log_no_truncate ON audit_log")
    op.execute("DROP TRIGGER audit_log_append_only ON audit_log")
    op.execute("DROP FUNCTION krowoc_audit_log_append_only()")
    op.drop_index("ix_users_email_lower", table_name="users")
    op.drop_index("ix_users_display_name_lower", table_name="users")
    op.drop_table("users")
    op.drop_table("rollup_watermarks")
    op.drop_index("ix_prompts_owner_id", table_name="prompts")
    op.drop_table("prompts")
    op.drop_table("execution_error_hour")
    op.drop_index("ix_execution_latency_hour_quantiles", table_name="execution_latency_hour")
    op.drop_index("ix_execution_rollup_hour_counts", table_name="execution_rollup_hour")
    op.drop_index("ix_execution_rollup_minute_counts", table_name="execution_rollup_minute")
    op.drop_index("ix_prompt_executions_error_category_created_at", table_name="prompt_executions")
    op.drop_index("ix_prompt_executions_latency_ms", table_name="prompt_executions")
    op.drop_index("ix_prompt_executions_user_id_created_at", table_name="prompt_executions")
    op.drop_index("ix_prompt_executions_request_id", table_name="prompt_executions")
    op.drop_index("ix_prompt_executions_created_at_brin", table_name="prompt_executions", postgresql_using="brin")
    op.drop_table("prompt_executions")
    op.drop_index("ix_leaderboard_snapshots_latest", table_name="leaderboard_snapshots")
    op.drop_table("leaderboard_snapshots")
    op.drop_table("execution_rollup_minute")
    op.drop_table("execution_rollup_hour")
    op.drop_table("execution_latency_hour")
    op.drop_table("execution_payloads")
    op.drop_index("ix_audit_log_target", table_name="audit_log")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_index("ix_audit_log_actor_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.execute(sa.schema.DropSequence(sa.Sequence("prompt_executions_id_seq")))
