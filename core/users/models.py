"""What support's user actions take and return."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.models import InvalidInput, Tier

MAX_ID = 2**63 - 1


class UserNotFound(InvalidInput):
    """No platform user has the id an action names."""

    def __init__(self, user_id: int) -> None:
        super().__init__(f"No user has the id {user_id}; search for the user again.")
        self.user_id = user_id


class ExecutionNotFound(InvalidInput):
    """No execution has the id an action names."""

    def __init__(self, execution_id: int) -> None:
        super().__init__(f"No execution has the id {execution_id}; check the id.")
        self.execution_id = execution_id


class _Request(BaseModel):
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


class TierChange(_Request):
    """Move a user to another tier, saying why (the reason goes into the audit log)."""

    user_id: int = Field(ge=1, le=MAX_ID)
    tier: Tier


class UserStatusChange(_Request):
    """Suspend or restore a user, saying why."""

    user_id: int = Field(ge=1, le=MAX_ID)


class ExecutionCancel(_Request):
    """Cancel an execution stuck in queued or running, saying why."""

    execution_id: int = Field(ge=1, le=MAX_ID)


class PayloadReveal(_Request):
    """Show an execution's input and output, saying why (audited)."""

    execution_id: int = Field(ge=1, le=MAX_ID)


class Payload(BaseModel):
    """An execution's prompt input and model output."""

    model_config = ConfigDict(frozen=True)

    execution_id: int
    created_at: datetime
    input_text: str
    output_text: str | None


def mask(text: str | None) -> str:
    """Hide a payload's text, telling only its length."""
    if text is None:
        return "(none)"
    return f"•••••• hidden ({len(text):,} characters)"
