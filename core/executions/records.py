"""Writes executions to PostgreSQL the way the platform does: one row per execution, in batches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import Connection, insert

from core.adapters.tables import ExecutionRow
from core.domain.classifier import classify
from core.domain.models import ErrorCategory, ExecutionStatus
from core.providers.base import CompletionRequest, ProviderCallFailed
from core.providers.router import RoutedResult

MESSAGE_LIMIT = 500


@dataclass(frozen=True)
class ExecutionRecord:
    """One execution's row, before it is written."""

    created_at: datetime
    user_id: int
    prompt_id: int
    provider: str
    model: str
    status: ExecutionStatus
    error_category: str | None
    error_code: str | None
    error_message: str | None
    latency_ms: int | None
    ttfb_ms: int | None
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    request_id: str
    finished_at: datetime | None


def record_of(request: CompletionRequest, result: RoutedResult, created_at: datetime) -> ExecutionRecord:
    """Turn a routed execution into its row: succeeded with its completion, or failed and classified."""
    if result.completion is not None:
        done = result.completion
        return ExecutionRecord(
            created_at=created_at,
            user_id=request.user_id,
            prompt_id=request.prompt_id,
            provider=done.provider,
            model=done.model,
            status=ExecutionStatus.SUCCEEDED,
            error_category=None,
            error_code=None,
            error_message=None,
            latency_ms=done.latency_ms,
            ttfb_ms=done.ttfb_ms,
            input_tokens=request.input_tokens,
            output_tokens=done.output_tokens,
            cost_usd=done.cost_usd,
            request_id=request.request_id,
            finished_at=created_at + timedelta(milliseconds=done.latency_ms),
        )
    error = result.error
    assert error is not None, "a routed result without a completion carries its error"
    category = classify(error).category
    # A call refused by an open breaker fails in no time: 0 ms, still an execution with a latency.
    latency = sum(a.error.latency_ms for a in result.attempts if isinstance(a.error, ProviderCallFailed))
    timed_out = category is ErrorCategory.PROVIDER_TIMEOUT
    return ExecutionRecord(
        created_at=created_at,
        user_id=request.user_id,
        prompt_id=request.prompt_id,
        provider=result.provider,
        model=result.model,
        status=ExecutionStatus.TIMED_OUT if timed_out else ExecutionStatus.FAILED,
        error_category=category.value,
        error_code=(error.code or "")[:64] or None,
        error_message=(error.message or "")[:MESSAGE_LIMIT] or None,
        latency_ms=latency,
        ttfb_ms=None,
        input_tokens=request.input_tokens,
        output_tokens=0,
        cost_usd=Decimal(0),
        request_id=request.request_id,
        finished_at=created_at + timedelta(milliseconds=latency),
    )


def write_executions(conn: Connection, records: Sequence[ExecutionRecord]) -> int:
    """Insert executions in the caller's transaction; return how many were written."""
    if not records:
        return 0
    rows = [
        {
            "created_at": r.created_at,
            "user_id": r.user_id,
            "prompt_id": r.prompt_id,
            "provider": r.provider,
            "model": r.model,
            "status": r.status.value,
            "error_category": r.error_category,
            "error_code": r.error_code,
            "error_message": r.error_message,
            "latency_ms": r.latency_ms,
            "ttfb_ms": r.ttfb_ms,
            "input_tokens": r.input_tokens,
            "output_tokens": r.output_tokens,
            "cost_usd": r.cost_usd,
            "request_id": r.request_id,
            "finished_at": r.finished_at,
        }
        for r in records
    ]
    conn.execute(insert(ExecutionRow), rows)
    return len(rows)
