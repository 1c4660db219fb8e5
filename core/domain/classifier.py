"""The error-category classifier: maps provider errors and exceptions to a category."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from core.domain.models import ErrorCategory


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


@dataclass(frozen=True)
class Classification:
    category: ErrorCategory
    severity: Severity
    retryable: bool


@dataclass(eq=False)
class ProviderError(Exception):
    """An error answered by an LLM provider: HTTP status, provider code and message."""

    # Not frozen: Python sets ``__traceback__`` on an exception as it travels (contextlib does so
    # in ``@contextmanager`` exits), which a frozen dataclass refuses. ``eq=False`` keeps the
    # identity hash every exception needs.
    provider: str
    status: int | None
    code: str | None = None
    message: str = ""

    def __post_init__(self) -> None:
        # Fills ``args`` so the error pickles (and copies) like any other exception.
        super().__init__(self.provider, self.status, self.code, self.message)

    def __str__(self) -> str:
        return f"{self.provider} {self.status or '-'} {self.code or ''}: {self.message}".strip()


class QuotaExceeded(Exception):
    """Our own tier limit refused the execution."""


# What each category means for operators: severity and whether a retry may succeed.
CATEGORY_TRAITS: dict[ErrorCategory, Classification] = {
    c.category: c
    for c in (
        Classification(ErrorCategory.PROVIDER_TIMEOUT, Severity.MEDIUM, True),
        Classification(ErrorCategory.PROVIDER_RATE_LIMITED, Severity.MEDIUM, True),
        Classification(ErrorCategory.PROVIDER_UNAVAILABLE, Severity.HIGH, True),
        Classification(ErrorCategory.PROVIDER_AUTH, Severity.CRITICAL, False),
        Classification(ErrorCategory.INVALID_REQUEST, Severity.LOW, False),
        Classification(ErrorCategory.CONTENT_FILTERED, Severity.LOW, False),
        Classification(ErrorCategory.CONTEXT_LENGTH_EXCEEDED, Severity.LOW, False),
        Classification(ErrorCategory.QUOTA_EXCEEDED, Severity.LOW, False),
        Classification(ErrorCategory.INTERNAL, Severity.HIGH, False),
    )
}

_CONTEXT = re.compile(r"context[_ ]length|maximum context|too many tokens|prompt is too long", re.I)
_CONTENT = re.compile(r"content[_ ](filter|policy)|safety|moderation|blocked", re.I)
_RATE = re.compile(r"rate[_ ]limit|too many requests|overloaded", re.I)
_AUTH = re.compile(r"api[_ ]key|unauthori[sz]ed|authentication|permission", re.I)


def _category_of_provider_error(err: ProviderError) -> ErrorCategory:
    text = f"{err.code or ''} {err.message}"
    if _CONTEXT.search(text):
        return ErrorCategory.CONTEXT_LENGTH_EXCEEDED
    if _CONTENT.search(text):
        return ErrorCategory.CONTENT_FILTERED
    status = err.status
    if status == 429 or _RATE.search(text):
        return ErrorCategory.PROVIDER_RATE_LIMITED
    if status in (401, 403) or _AUTH.search(text):
        return ErrorCategory.PROVIDER_AUTH
    if status in (408, 504):
        return ErrorCategory.PROVIDER_TIMEOUT
    if status is not None and 500 <= status <= 599:
        return ErrorCategory.PROVIDER_UNAVAILABLE
    if status is not None and 400 <= status <= 499:
        return ErrorCategory.INVALID_REQUEST
    return ErrorCategory.INTERNAL


def classify(error: BaseException) -> Classification:
    """Classifies an exception raised while running an execution."""
    if isinstance(error, QuotaExceeded):
        category = ErrorCategory.QUOTA_EXCEEDED
    elif isinstance(error, ProviderError):
        category = _category_of_provider_error(error)
    elif isinstance(error, TimeoutError):
        category = ErrorCategory.PROVIDER_TIMEOUT
    elif isinstance(error, ConnectionError):
        category = ErrorCategory.PROVIDER_UNAVAILABLE
    else:
        category = ErrorCategory.INTERNAL
    return CATEGORY_TRAITS[category]
