"""The router: sends an execution to its provider, falls back to another one when that fails.

A provider whose breaker is open is skipped without a call. A provider-side failure (timeout,
rate limit, unavailable) counts against its breaker and, when the request allows it, moves on
to the next provider in ``PROVIDERS`` order with that provider's model of the same rank. A
request error (bad input, content filtered, context too long) is the caller's and is neither
counted against the breaker nor retried elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.domain.classifier import ProviderError, classify
from core.domain.models import ErrorCategory
from core.providers.base import Completion, CompletionRequest, LLMProvider, ProviderCallFailed
from core.providers.breaker import CircuitBreakers

PROVIDER_SIDE = {
    ErrorCategory.PROVIDER_TIMEOUT,
    ErrorCategory.PROVIDER_RATE_LIMITED,
    ErrorCategory.PROVIDER_UNAVAILABLE,
}


@dataclass(eq=False)
class CircuitOpen(ProviderCallFailed):
    """The provider's breaker is open: the call was refused without reaching it."""


@dataclass(frozen=True)
class Attempt:
    """One provider tried for an execution."""

    provider: str
    model: str
    error: ProviderError | None


@dataclass(frozen=True)
class RoutedResult:
    """The outcome of an execution: the completion, or the last error, and every attempt made."""

    completion: Completion | None
    error: ProviderError | None
    attempts: tuple[Attempt, ...]

    @property
    def provider(self) -> str:
        """The provider of the last attempt (the one that answered or failed last)."""
        return self.attempts[-1].provider

    @property
    def model(self) -> str:
        """The model of the last attempt."""
        return self.attempts[-1].model


class Router:
    """Routes executions to providers with fallback, obeying each provider's circuit breaker."""

    def __init__(self, providers: dict[str, LLMProvider], breakers: CircuitBreakers, *, max_attempts: int = 2) -> None:
        self.providers = providers
        self.breakers = breakers
        self.max_attempts = max_attempts

    def _fallback_model(self, model: str, source: str, target: str) -> str:
        rank = self.providers[source].models.index(model) if model in self.providers[source].models else 0
        models = self.providers[target].models
        return models[min(rank, len(models) - 1)]

    def _candidates(self, request: CompletionRequest) -> list[tuple[str, str]]:
        chosen = [(request.provider, request.model)]
        if request.allow_fallback:
            for name in self.providers:
                if name != request.provider:
                    chosen.append((name, self._fallback_model(request.model, request.provider, name)))
        return chosen[: self.max_attempts if request.allow_fallback else 1]

    def execute(self, request: CompletionRequest) -> RoutedResult:
        """Run an execution on its provider, falling back on a provider-side failure."""
        if request.provider not in self.providers:
            raise ProviderError(request.provider, None, "unknown_provider", f"No provider named {request.provider}")
        attempts: list[Attempt] = []
        last: ProviderError | None = None
        for provider, model in self._candidates(request):
            if not self.breakers.allow(provider):
                last = CircuitOpen(provider, 503, "circuit_open", f"Circuit breaker open for {provider}")
                attempts.append(Attempt(provider, model, last))
                continue
            try:
                completion = self.providers[provider].complete(request, model)
            except ProviderError as exc:
                category = classify(exc).category
                if category in PROVIDER_SIDE:
                    self.breakers.record(provider, ok=False)
                attempts.append(Attempt(provider, model, exc))
                last = exc
                if category not in PROVIDER_SIDE:
                    break
                continue
            self.breakers.record(provider, ok=True)
            attempts.append(Attempt(provider, model, None))
            return RoutedResult(completion, None, tuple(attempts))
        return RoutedResult(None, last, tuple(attempts))
