"""Domain vocabulary and the Pydantic models services take and return."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.domain.exceptions import InvalidInput


class Tier(StrEnum):
    FREE = "free"
    PRO = "pro"
    TEAM = "team"
    ENTERPRISE = "enterprise"


class UserStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class ExecutionStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"


class ErrorCategory(StrEnum):
    """The closed set of error categories; see ``core.domain.classifier`` for the classifier."""

    PROVIDER_TIMEOUT = "provider_timeout"
    PROVIDER_RATE_LIMITED = "provider_rate_limited"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    PROVIDER_AUTH = "provider_auth"
    INVALID_REQUEST = "invalid_request"
    CONTENT_FILTERED = "content_filtered"
    CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
    QUOTA_EXCEEDED = "quota_exceeded"
    INTERNAL = "internal"


class Role(StrEnum):
    VIEWER = "viewer"
    SUPPORT = "support"
    OPERATOR = "operator"
    PRODUCT = "product"
    ADMIN = "admin"


class AuditOutcome(StrEnum):
    """How an attempt ended; an action with an effect outside the database is recorded first as ``pending``."""

    SUCCESS = "success"
    DENIED = "denied"
    FAILED = "failed"
    INVALID = "invalid"
    PENDING = "pending"
    """The intent of an action whose effect lies outside the database, recorded before the effect."""
    UNKNOWN = "unknown"
    """No outcome was recorded for an intent in time (the process died between the two)."""


class AuditSource(StrEnum):
    DASHBOARD = "dashboard"
    CLI = "cli"
    API = "api"


class Actor(BaseModel):
    """A member of staff acting through the dashboard, the CLI or the API."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1, max_length=200)
    role: Role
    display_name: str = ""
    source: AuditSource = AuditSource.DASHBOARD
    dev_login: bool = False


MAX_ID = 2**63 - 1
"""The largest id a bigint column holds."""


class ActionRequest(BaseModel):
    """What an admin action takes: its target and a reason, which goes into the audit log."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: str = Field(default="", max_length=5000)

    @classmethod
    def of(cls, **values: Any) -> Self:
        """Build the request, turning a validation error into an ``InvalidInput`` a person can act on."""
        try:
            return cls(**values)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(part) for part in first["loc"]) or "input"
            raise InvalidInput(f"{field.replace('_', ' ')}: {first['msg']}.") from None


class User(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    display_name: str
    tier: Tier
    status: UserStatus
    created_at: datetime
    last_seen_at: datetime | None = None


class Prompt(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    owner_id: int
    title: str
    tags: list[str]
    version: int
    created_at: datetime
    updated_at: datetime


class Execution(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: int
    prompt_id: int
    provider: str
    model: str
    status: ExecutionStatus
    error_category: ErrorCategory | None = None
    error_code: str | None = None
    error_message: str | None = None
    latency_ms: int | None = None
    ttfb_ms: int | None = None
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal
    score: float | None = None
    request_id: str
    created_at: datetime
    finished_at: datetime | None = None


class AuditRecord(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    actor_role: Role
    action: str
    target_type: str
    target_id: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    reason: str | None = None
    request_id: str
    source: AuditSource
    outcome: AuditOutcome
    detail: str | None = None
    intent_id: int | None = None
    """For an outcome of an action recorded before its effect: the id of its ``pending`` intent."""


MAX_WINDOW = timedelta(days=400)


class TimeWindow(BaseModel):
    """A half-open time range [start, end) in UTC, validated for dashboard queries."""

    model_config = ConfigDict(frozen=True)

    start: datetime
    end: datetime

    @model_validator(mode="after")
    def _check(self) -> TimeWindow:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("time range bounds must carry a time zone")
        if self.end <= self.start:
            raise ValueError("the end of the time range must be after its start")
        if self.end - self.start > MAX_WINDOW:
            raise ValueError(f"the time range may span at most {MAX_WINDOW.days} days")
        return self

    @classmethod
    def last(cls, span: timedelta, *, now: datetime | None = None) -> TimeWindow:
        """Build the window that ends now and spans ``span``."""
        end = (now or datetime.now(UTC)).astimezone(UTC)
        return cls(start=end - span, end=end)

    @property
    def span(self) -> timedelta:
        return self.end - self.start
