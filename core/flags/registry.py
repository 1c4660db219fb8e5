"""The flags the platform's code knows, each registered once with its default.

The default is what the code does when Unleash has never answered and the client has no backup,
or when a flag is missing from Unleash: the platform keeps behaving. The seed creates these flags
in an empty Unleash with realistic per-environment states.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FlagDefinition:
    """A flag the code checks: its Unleash type, what it does, its default and its seeded states."""

    name: str
    type: str
    description: str
    default: bool = False
    # Seeded state per environment: None = off; an int = on with a gradual rollout of that %.
    seed: dict[str, int | None] = field(default_factory=dict)
    age_days: int = 0  # seeded as created this many days ago (old flags become potentially stale)
    stale: bool = False


REGISTRY: dict[str, FlagDefinition] = {}


def register(definition: FlagDefinition) -> FlagDefinition:
    """Register a flag the code knows; a name may be registered once."""
    if definition.name in REGISTRY:
        raise ValueError(f"flag {definition.name!r} is registered twice")
    REGISTRY[definition.name] = definition
    return definition


def default_for(name: str) -> bool:
    """Return a flag's registered default, False for a flag the code does not know."""
    known = REGISTRY.get(name)
    return known.default if known else False


for _definition in (
    # release
    FlagDefinition(
        "new-prompt-editor", "release", "The rewritten prompt editor.", seed={"development": 100, "production": 25}
    ),
    FlagDefinition(
        "streaming-responses",
        "release",
        "Stream model output token by token.",
        seed={"development": 100, "production": 10},
    ),
    FlagDefinition(
        "prompt-version-diff",
        "release",
        "Side-by-side diff of prompt versions.",
        seed={"development": 100, "production": None},
    ),
    FlagDefinition(
        "team-workspaces",
        "release",
        "Shared workspaces for team-tier accounts.",
        seed={"development": 100, "production": 100},
    ),
    FlagDefinition(
        "legacy-dashboard-redirect",
        "release",
        "Send old dashboard links to the new one.",
        seed={"development": 100, "production": 100},
        age_days=120,
    ),
    # experiment
    FlagDefinition(
        "model-picker-v2", "experiment", "The ranked model picker.", seed={"development": 100, "production": 50}
    ),
    FlagDefinition(
        "cheaper-default-model",
        "experiment",
        "Default new prompts to the cheaper model.",
        seed={"development": 50, "production": None},
    ),
    FlagDefinition(
        "onboarding-checklist",
        "experiment",
        "A checklist for new free-tier users.",
        seed={"development": 100, "production": 30},
    ),
    FlagDefinition(
        "holiday-banner-2025",
        "experiment",
        "Holiday promotion banner.",
        seed={"development": None, "production": None},
        age_days=330,
    ),
    # operational
    FlagDefinition(
        "provider-failover",
        "operational",
        "Fail over to a second provider on 5xx.",
        default=True,
        seed={"development": 100, "production": 100},
    ),
    FlagDefinition(
        "execution-retry-backoff",
        "operational",
        "Exponential backoff between provider retries.",
        default=True,
        seed={"development": 100, "production": 100},
    ),
    FlagDefinition(
        "anthropic-batch-queue",
        "operational",
        "Route Anthropic batch jobs through the queue.",
        seed={"development": 100, "production": None},
        age_days=21,
    ),
    # kill switches: on means the thing is switched off
    FlagDefinition(
        "kill-google-provider",
        "kill-switch",
        "Stop sending executions to Google.",
        seed={"development": None, "production": None},
    ),
    FlagDefinition(
        "kill-payload-logging",
        "kill-switch",
        "Stop storing prompt inputs and outputs.",
        seed={"development": None, "production": None},
    ),
    FlagDefinition(
        "kill-leaderboards",
        "kill-switch",
        "Stop recomputing leaderboards.",
        seed={"development": 100, "production": None},
    ),
    # permission
    FlagDefinition(
        "enterprise-sso",
        "permission",
        "SAML single sign-on for enterprise accounts.",
        seed={"development": 100, "production": 100},
    ),
    FlagDefinition(
        "payload-export",
        "permission",
        "Let team admins export execution payloads.",
        seed={"development": 100, "production": None},
    ),
    FlagDefinition(
        "bulk-execution-api",
        "permission",
        "The bulk execution endpoint.",
        seed={"development": 100, "production": None},
    ),
    # marked stale in Unleash: due for removal from the code
    FlagDefinition(
        "old-billing-page",
        "release",
        "The previous billing page.",
        seed={"development": None, "production": None},
        age_days=200,
        stale=True,
    ),
):
    register(_definition)
