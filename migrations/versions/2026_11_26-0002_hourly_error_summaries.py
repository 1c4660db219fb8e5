"""Hourly error summaries for long ranges: errors per category in execution_latency_hour, and
per-provider and platform-wide rows in execution_error_hour, with an index by series.

Adds ``error_categories`` and ``error_counts`` (parallel arrays sorted by category) to
``execution_latency_hour`` and fills them for the rows already there from
``execution_rollup_hour``; adds to ``execution_error_hour`` the rows of each provider (model
'*') and of the platform (provider and model '*'), summed from its per-model rows. Both follow
the series of ``execution_latency_hour``: a model's row counts its own errors, a provider's '*'
row its models', the platform's '*' row every one.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 08:30:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILL = """
UPDATE execution_latency_hour AS l
SET error_categories = c.error_categories, error_counts = c.error_counts
FROM (
    SELECT bucket_start, provider, model,
           array_agg(error_category ORDER BY error_category) AS error_categories,
           array_agg(n ORDER BY error_category) AS error_counts
    FROM (
        SELECT bucket_start, coalesce(provider, '*') AS provider, coalesce(model, '*') AS model,
               error_category, sum(executions) AS n
        FROM execution_rollup_hour WHERE error_category <> ''
        GROUP BY GROUPING SETS ((bucket_start, provider, model, error_category),
                                (bucket_start, provider, error_category), (bucket_start, error_category))
    ) AS per_category
    GROUP BY bucket_start, provider, model
) AS c
WHERE l.bucket_start = c.bucket_start AND l.provider = c.provider AND l.model = c.model
"""


ERROR_HOUR_SERIES = """
INSERT INTO execution_error_hour
    (bucket_start, provider, model, error_category, error_code, error_message, executions, last_seen_at)
SELECT bucket_start, coalesce(provider, '*'), '*', error_category, error_code, error_message,
       sum(executions), max(last_seen_at)
FROM execution_error_hour
GROUP BY GROUPING SETS ((bucket_start, provider, error_category, error_code, error_message),
                        (bucket_start, error_category, error_code, error_message))
ORDER BY 1
"""


def upgrade() -> None:
    op.add_column(
        "execution_latency_hour",
        sa.Column(
            "error_categories",
            postgresql.ARRAY(sa.String(length=32)),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
    )
    op.add_column(
        "execution_latency_hour",
        sa.Column("error_counts", postgresql.ARRAY(sa.BigInteger()), server_default=sa.text("'{}'"), nullable=False),
    )
    op.execute(BACKFILL)
    op.execute(ERROR_HOUR_SERIES)
    op.create_index(
        "ix_execution_error_hour_series",
        "execution_error_hour",
        ["provider", "model", "bucket_start"],
        unique=False,
        postgresql_include=["error_category", "error_code", "error_message", "executions", "last_seen_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_execution_error_hour_series", table_name="execution_error_hour")
    op.execute("DELETE FROM execution_error_hour WHERE provider = '*' OR model = '*'")
    op.drop_column("execution_latency_hour", "error_counts")
    op.drop_column("execution_latency_hour", "error_categories")
