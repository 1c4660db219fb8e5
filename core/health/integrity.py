"""Whether the rollups, the partitions and the audit chain are sound, after a migration, a restore or an incident.

``krowoc-admin verify`` runs every check here and exits non-zero with one line per problem:

- rollups: for a sample of hours that hold executions (the newest full one and a few drawn at
  random), the hour rollup's counts, latency sums and costs per provider, model, status and
  error category must equal the raw executions' aggregation;
- partitions: every month from the oldest partition to ``months_ahead`` after this one has its
  partition (an insert into a missing month fails), and no kept execution is older than the
  retention;
- the audit chain: every row follows from the one before it (``AuditLog.verify``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text

from core.adapters.db import Database
from core.adapters.tables import EXECUTION_PARTITION_PREFIX
from core.audit import AuditLog

SAMPLE_HOURS = 4

ROLLUP_AGAINST_RAW = text(
    """
    WITH raw AS (
        SELECT provider, model, status, coalesce(error_category, '') AS error_category,
               count(*) AS executions, coalesce(sum(latency_ms), 0) AS latency_sum_ms, sum(cost_usd) AS cost_usd
        FROM prompt_executions
        WHERE created_at >= :start AND created_at < :end
        GROUP BY 1, 2, 3, 4
    ),
    rolled AS (
        SELECT provider, model, status, error_category, executions, latency_sum_ms, cost_usd
        FROM execution_rollup_hour WHERE bucket_start = :start
    )
    SELECT count(*) FROM raw FULL JOIN rolled USING (provider, model, status, error_category)
    WHERE raw.executions IS DISTINCT FROM rolled.executions
       OR raw.latency_sum_ms IS DISTINCT FROM rolled.latency_sum_ms
       OR raw.cost_usd IS DISTINCT FROM rolled.cost_usd
    """
)


@dataclass(frozen=True)
class Problem:
    """One thing found wrong, in one line a person can act on."""

    check: str
    line: str


class IntegrityCheck:
    """Checks the rollups against the raw table, the partitions, and the audit chain."""

    def __init__(self, db: Database, audit: AuditLog, *, retention_days: int, months_ahead: int = 1) -> None:
        self.db = db
        self.audit = audit
        self.retention_days = retention_days
        self.months_ahead = months_ahead

    def run(self, *, now: datetime | None = None, rng: random.Random | None = None) -> list[Problem]:
        """Run every check; return what is wrong (nothing: all is sound)."""
        moment = (now or datetime.now(UTC)).astimezone(UTC)
        return [
            *self.rollups(moment, rng or random.Random()),
            *self.partitions(moment),
            *self.audit_chain(),
        ]

    def rollups(self, now: datetime, rng: random.Random) -> list[Problem]:
        """Compare the hour rollup with the raw executions for a sample of hours the refresher has folded."""
        with self.db.read(timeout_ms=120_000) as conn:
            watermark = conn.execute(text("SELECT watermark FROM rollup_watermarks WHERE name = 'executions'")).scalar()
            if watermark is None:
                return []
            folded_until = min(watermark, now).replace(minute=0, second=0, microsecond=0)
            hours = list(
                conn.execute(
                    text(
                        "SELECT bucket_start FROM execution_latency_hour WHERE provider = '*' AND model = '*' "
                        "AND bucket_start < :until ORDER BY bucket_start"
                    ),
                    {"until": folded_until},
                ).scalars()
            )
            sample = sorted({*hours[-1:], *rng.sample(hours, min(SAMPLE_HOURS - 1, len(hours)))})
            problems = []
            for hour in sample:
                differing = conn.execute(
                    ROLLUP_AGAINST_RAW, {"start": hour, "end": hour + timedelta(hours=1)}
                ).scalar_one()
                if differing:
                    problems.append(
                        Problem(
                            "rollups",
                            f"the hour rollup of {hour:%Y-%m-%d %H:00} UTC differs from the raw executions in "
                            f"{differing} group(s): run `krowoc-admin rollups rebuild`",
                        )
                    )
        return problems

    def partitions(self, now: datetime) -> list[Problem]:
        """Check that every month from the oldest partition to ``months_ahead`` ahead has its partition."""
        with self.db.read() as conn:
            names = list(
                conn.execute(
                    text(
                        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                        "WHERE i.inhparent = 'prompt_executions'::regclass"
                    )
                ).scalars()
            )
            oldest_row = conn.execute(text("SELECT min(created_at) FROM prompt_executions")).scalar()
        months = sorted(_month_of(name) for name in names if name.startswith(EXECUTION_PARTITION_PREFIX))
        problems: list[Problem] = []
        this_month = date(now.year, now.month, 1)
        wanted_end = _add_months(this_month, self.months_ahead)
        first = months[0] if months else this_month
        missing = [m for m in _months(first, wanted_end) if m not in set(months)]
        if missing:
            shown = ", ".join(f"{m:%Y-%m}" for m in missing[:6]) + (" ..." if len(missing) > 6 else "")
            problems.append(
                Problem(
                    "partitions",
                    f"no partition for {shown}: run `krowoc-admin partitions ensure --since {missing[0]:%Y-%m} "
                    f"--months-ahead {self.months_ahead}`",
                )
            )
        if oldest_row is not None and oldest_row < now - timedelta(days=self.retention_days):
            problems.append(
                Problem(
                    "partitions",
                    f"executions from {oldest_row:%Y-%m-%d} are kept, beyond the {self.retention_days}-day retention: "
                    "detach the oldest partitions",
                )
            )
        return problems

    def audit_chain(self) -> list[Problem]:
        """Recompute the audit log's hash chain."""
        verdict = self.audit.verify()
        if verdict.first_break is None:
            return []
        return [
            Problem(
                "audit",
                f"the audit log was changed at row {verdict.first_break.id}: {verdict.first_break.why}; "
                "compare with the published heads (docs/security.md)",
            )
        ]


def _month_of(partition: str) -> date:
    digits = partition.removeprefix(EXECUTION_PARTITION_PREFIX)
    return date(int(digits[:4]), int(digits[4:6]), 1)


def _add_months(month: date, count: int) -> date:
    total = month.year * 12 + month.month - 1 + count
    return date(total // 12, total % 12 + 1, 1)


def _months(first: date, last: date) -> list[date]:
    months = []
    current = first
    while current <= last:
        months.append(current)
        current = _add_months(current, 1)
    return months
