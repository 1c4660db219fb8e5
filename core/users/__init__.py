"""Support's actions on platform users and their executions: tier, suspension, cancel, payload reveal."""

from core.users.models import (
    ExecutionCancel,
    ExecutionNotFound,
    Payload,
    PayloadReveal,
    TierChange,
    UserNotFound,
    UserStatusChange,
)
from core.users.service import UserService
from core.users.sessions import RedisUserSessions

__all__ = [
    "ExecutionCancel",
    "ExecutionNotFound",
    "Payload",
    "PayloadReveal",
    "RedisUserSessions",
    "TierChange",
    "UserNotFound",
    "UserService",
    "UserStatusChange",
]
