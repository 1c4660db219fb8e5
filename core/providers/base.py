"""The adapter interface every LLM provider implements, and what a call takes and returns."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from core.domain.classifier import ProviderError


@dataclass(frozen=True)
class CompletionRequest:
    """One prompt execution as the platform asks a provider for it."""

    user_id: int
    prompt_id: int
    provider: str
    model: str
    input_tokens: int
    request_id: str
    allow_fallback: bool = True


@dataclass(frozen=True)
class Completion:
    """A provider's answer: who answered, how fast and at what cost."""

    provider: str
    model: str
    latency_ms: int
    ttfb_ms: int
    output_tokens: int
    cost_usd: Decimal


@dataclass(eq=False)
class ProviderCallFailed(ProviderError):
    """A provider call failed after it ran for ``latency_ms`` (the time is kept for the records)."""

    latency_ms: int = 0


class LLMProvider(Protocol):
    """An LLM provider adapter: runs one completion on one of its models or raises a provider error."""

    name: str

    @property
    def models(self) -> tuple[str, ...]: ...

    def complete(self, request: CompletionRequest, model: str) -> Completion: ...
