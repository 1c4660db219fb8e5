"""What support's user actions take and return."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from core.domain.exceptions import InvalidInput
from core.domain.models import MAX_ID, ActionRequest, Tier


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


class TierChange(ActionRequest):
    """Move a user to another tier, saying why (the reason goes into the audit log)."""

    user_id: int = Field(ge=1, le=MAX_ID)
    tier: Tier


class UserStatusChange(ActionRequest):
    """Suspend or restore a user, saying why."""

    user_id: int = Field(ge=1, le=MAX_ID)


class ExecutionCancel(ActionRequest):
    """Cancel an execution stuck in queued or running, saying why."""

    execution_id: int = Field(ge=1, le=MAX_ID)


class PayloadReveal(ActionRequest):
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
