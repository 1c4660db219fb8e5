"""Local simulated providers with per-model latency and error profiles; no real provider is called.

Latency is drawn from a log-normal around each model's median (the same profiles the seed uses),
errors from per-category rates. ``Incidents`` turns on an outage, a rate-limit storm or a latency
spike, read on every call so a running simulator can change course (``devstack.simulator.channel`` keeps
it in line with the incidents listed in Redis).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from decimal import Decimal

from core.domain.catalog import PROVIDERS
from core.domain.classifier import ProviderError
from core.domain.models import ErrorCategory
from core.providers.base import Completion, CompletionRequest, ProviderCallFailed
from devstack.seed.profiles import MODELS
from devstack.simulator.incidents import Incidents

ERROR_SHAPES: dict[ErrorCategory, tuple[int, str, str]] = {
    ErrorCategory.PROVIDER_TIMEOUT: (504, "timeout", "Upstream request timed out after 60 s"),
    ErrorCategory.PROVIDER_RATE_LIMITED: (429, "rate_limit_exceeded", "Rate limit reached for requests per minute"),
    ErrorCategory.PROVIDER_UNAVAILABLE: (503, "service_unavailable", "Service temporarily unavailable"),
    ErrorCategory.INVALID_REQUEST: (400, "invalid_request_error", "Invalid value for parameter temperature"),
    ErrorCategory.CONTENT_FILTERED: (400, "content_filter", "Output blocked by the content policy"),
    ErrorCategory.CONTEXT_LENGTH_EXCEEDED: (
        400,
        "context_length_exceeded",
        "This model's maximum context length is exceeded",
    ),
}

# Normal-day error rates per call, by category.
BASE_ERROR_RATES: dict[ErrorCategory, float] = {
    ErrorCategory.PROVIDER_TIMEOUT: 0.004,
    ErrorCategory.PROVIDER_RATE_LIMITED: 0.006,
    ErrorCategory.PROVIDER_UNAVAILABLE: 0.003,
    ErrorCategory.INVALID_REQUEST: 0.004,
    ErrorCategory.CONTENT_FILTERED: 0.002,
    ErrorCategory.CONTEXT_LENGTH_EXCEEDED: 0.002,
}


@dataclass(frozen=True)
class SimulatedModel:
    """A model's latency and price profile."""

    median_ms: float
    sigma: float
    price_in: float
    price_out: float


class SimulatedProvider:
    """A provider answering from its models' profiles; never sleeps, returns the latency it drew."""

    def __init__(
        self,
        name: str,
        models: dict[str, SimulatedModel],
        *,
        incidents: Incidents | None = None,
        error_rates: dict[ErrorCategory, float] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self._models = models
        self.incidents = incidents or Incidents()
        self.error_rates = dict(BASE_ERROR_RATES if error_rates is None else error_rates)
        self.rng = rng or random.Random()

    @property
    def models(self) -> tuple[str, ...]:
        """The models this provider serves."""
        return tuple(self._models)

    def _fail(self, category: ErrorCategory, latency_ms: int) -> ProviderCallFailed:
        status, code, message = ERROR_SHAPES[category]
        return ProviderCallFailed(self.name, status, code, message, latency_ms=latency_ms)

    def complete(self, request: CompletionRequest, model: str) -> Completion:
        """Run one simulated completion, or raise the provider error the profile draws."""
        profile = self._models.get(model)
        if profile is None:
            raise ProviderError(self.name, 404, "model_not_found", f"The model {model} does not exist")
        rng = self.rng
        incidents = self.incidents.affecting(self.name)
        output_tokens = max(1, int(rng.lognormvariate(math.log(320), 0.7)))
        latency = rng.lognormvariate(math.log(profile.median_ms), profile.sigma) * (output_tokens / 320.0) ** 0.35
        if "latency_spike" in incidents:
            latency *= 6.0
        latency = min(max(latency, 20.0), 600_000.0)
        if "provider_outage" in incidents and rng.random() < 0.97:
            raise self._fail(ErrorCategory.PROVIDER_UNAVAILABLE, int(rng.uniform(30, 400)))
        if "rate_limit_storm" in incidents and rng.random() < 0.35:
            raise self._fail(ErrorCategory.PROVIDER_RATE_LIMITED, int(rng.uniform(20, 120)))
        draw = rng.random()
        for category, rate in self.error_rates.items():
            if draw < rate:
                failed_after = (
                    60_000 if category == ErrorCategory.PROVIDER_TIMEOUT else int(latency * rng.uniform(0.05, 0.4))
                )
                raise self._fail(category, max(20, failed_after))
            draw -= rate
        cost = request.input_tokens / 1000 * profile.price_in + output_tokens / 1000 * profile.price_out
        return Completion(
            provider=self.name,
            model=model,
            latency_ms=int(latency),
            ttfb_ms=int(latency * rng.uniform(0.12, 0.38)),
            output_tokens=output_tokens,
            cost_usd=Decimal(f"{cost:.6f}"),
        )


def simulated_providers(incidents: Incidents | None = None, *, seed: int | None = None) -> dict[str, SimulatedProvider]:
    """Build one simulated provider per known provider, with the seed's model profiles."""
    shared = incidents or Incidents()
    rng = random.Random(seed)
    built: dict[str, SimulatedProvider] = {}
    for name in PROVIDERS:
        models = {
            m.model: SimulatedModel(m.median_ms, m.sigma, m.price_in, m.price_out) for m in MODELS if m.provider == name
        }
        built[name] = SimulatedProvider(name, models, incidents=shared, rng=random.Random(rng.random()))
    return built
