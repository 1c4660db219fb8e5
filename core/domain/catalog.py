"""The providers and models the platform runs executions on, written once.

The order is the router's: providers in the order it tries them as fallbacks, each provider's
models from its flagship down (a fallback takes the other provider's model of the same rank).
The router, provider health, the query filters and the pickers read this catalogue; the seed and
the simulator only add their traffic profiles to it.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.domain.exceptions import InvalidInput


@dataclass(frozen=True)
class CatalogModel:
    """One model of one provider."""

    provider: str
    model: str


CATALOG: tuple[CatalogModel, ...] = (
    CatalogModel("openai", "gpt-4o"),
    CatalogModel("openai", "gpt-4o-mini"),
    CatalogModel("openai", "o3-mini"),
    CatalogModel("anthropic", "claude-sonnet-4"),
    CatalogModel("anthropic", "claude-haiku-3.5"),
    CatalogModel("google", "gemini-2.0-flash"),
    CatalogModel("google", "gemini-1.5-pro"),
    CatalogModel("mistral", "mistral-large"),
    CatalogModel("mistral", "mistral-small"),
)

PROVIDERS: tuple[str, ...] = tuple(dict.fromkeys(entry.provider for entry in CATALOG))
"""The providers the platform knows, in the order the router prefers them as fallbacks."""

KNOWN_MODELS: dict[str, tuple[str, ...]] = {
    name: tuple(entry.model for entry in CATALOG if entry.provider == name) for name in PROVIDERS
}
"""Each provider's models, flagship first."""

ALL_MODELS: tuple[str, ...] = tuple(entry.model for entry in CATALOG)
"""Every model of every provider, in catalogue order."""


def check_provider(provider: str) -> str:
    """Return a provider the platform knows, or raise ``InvalidInput`` naming the ones it does."""
    if provider not in PROVIDERS:
        raise InvalidInput(f"Unknown provider {provider!r}: pick one of {', '.join(PROVIDERS)}.")
    return provider


def check_model(model: str, provider: str | None = None) -> str:
    """Return a model the platform knows (of ``provider`` when given), or raise ``InvalidInput``."""
    known = KNOWN_MODELS.get(provider, ()) if provider else ALL_MODELS
    if model not in known:
        where = f" for {provider}" if provider else ""
        raise InvalidInput(f"Unknown model {model!r}{where}: pick one of {', '.join(known)}.")
    return model
