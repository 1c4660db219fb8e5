"""The append-only audit log and the wrapper every admin action runs in."""

from core.audit.log import AuditedAction, AuditLog, EventPublisher, NoEvents

__all__ = ["AuditLog", "AuditedAction", "EventPublisher", "NoEvents"]
