"""The append-only audit log and the wrapper every admin action runs in."""

from core.audit.log import (
    AuditedAction,
    AuditLog,
    ChainBreak,
    ChainVerdict,
    EventPublisher,
    NoEvents,
    printable,
    refuse_control_characters,
)
from core.audit.throttle import ActionLimit, ActionThrottle, ActionThrottled
from core.audit.upkeep import AuditUpkeep, UpkeepReport

__all__ = [
    "ActionLimit",
    "ActionThrottle",
    "ActionThrottled",
    "AuditLog",
    "AuditUpkeep",
    "AuditedAction",
    "ChainBreak",
    "ChainVerdict",
    "EventPublisher",
    "NoEvents",
    "UpkeepReport",
    "printable",
    "refuse_control_characters",
]
