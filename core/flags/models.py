"""The feature-flag vocabulary: flags per environment, changes, evaluations, history, and typed errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.domain.exceptions import InvalidInput
from core.domain.models import ActionRequest, AuditRecord

FLAG_TYPES = ("release", "experiment", "operational", "kill-switch", "permission")
ROLLOUT_STRATEGY = "flexibleRollout"


@dataclass(frozen=True)
class UnleashEndpoint:
    """Where an Unleash answers and the tokens to talk to it (``api_url`` ends in ``/api``)."""

    api_url: str
    admin_token: str = field(repr=False)
    client_token: str = field(repr=False)
    client_tokens: dict[str, str] = field(repr=False)

    @property
    def base_url(self) -> str:
        """The server's URL without ``/api``."""
        return self.api_url.removesuffix("/api")


class FlagError(Exception):
    """Base of the feature-flag errors a page turns into a message."""


class ChangeRefused(FlagError):
    """Unleash answered but refused the change (for example a change request is required)."""


class UnknownFlag(InvalidInput):
    """No flag of that name exists in Unleash."""


class UnknownEnvironment(InvalidInput):
    """The flag has no such environment in Unleash."""


class Strategy(BaseModel):
    """One activation strategy of a flag in one environment."""

    model_config = ConfigDict(frozen=True)

    name: str
    parameters: dict[str, str] = Field(default_factory=dict)
    constraints: int = 0
    disabled: bool = False

    @property
    def rollout(self) -> int | None:
        """The rollout % of a gradual rollout strategy, else None."""
        if self.name != ROLLOUT_STRATEGY:
            return None
        try:
            return int(float(self.parameters.get("rollout", "100")))
        except ValueError:
            return None


class EnvironmentState(BaseModel):
    """Whether a flag is on in one environment, and how it is rolled out there."""

    model_config = ConfigDict(frozen=True)

    environment: str
    enabled: bool
    strategies: list[Strategy] = Field(default_factory=list)

    @property
    def rollout(self) -> int | None:
        """The first active gradual rollout's %, else None."""
        for strategy in self.strategies:
            if not strategy.disabled and strategy.rollout is not None:
                return strategy.rollout
        return None


class Flag(BaseModel):
    """A flag as Unleash knows it, with its state in every environment."""

    model_config = ConfigDict(frozen=True)

    name: str
    project: str
    type: str
    description: str = ""
    stale: bool = False
    potentially_stale: bool = False
    created_at: datetime | None = None
    created_by: str | None = None
    environments: dict[str, EnvironmentState] = Field(default_factory=dict)
    last_changed_at: datetime | None = None
    last_changed_by: str | None = None


class FlagCatalog(BaseModel):
    """Every flag in every environment, as read from Unleash at ``fetched_at``."""

    projects: list[str]
    environments: list[str]
    flags: list[Flag]
    fetched_at: datetime


class FlagListing(BaseModel):
    """What the page shows: the catalog, live or the last known one with its age."""

    catalog: FlagCatalog
    live: bool
    problem: str | None = None

    def age_seconds(self, now: datetime | None = None) -> float:
        """Seconds since the catalog was read from Unleash."""
        return ((now or datetime.now(UTC)) - self.catalog.fetched_at).total_seconds()


class FlagEvent(BaseModel):
    """One entry of Unleash's event log about a flag."""

    model_config = ConfigDict(frozen=True)

    id: int
    at: datetime
    type: str
    by: str
    environment: str | None = None
    project: str | None = None
    feature: str | None = None
    summary: str = ""


class FlagHistory(BaseModel):
    """A flag's events in Unleash beside our audit rows about it."""

    name: str
    events: list[FlagEvent]
    audit: list[AuditRecord]
    problem: str | None = None


class Evaluation(BaseModel):
    """What the Unleash client answered for one flag and context."""

    model_config = ConfigDict(frozen=True)

    name: str
    enabled: bool
    default: bool
    known_to_client: bool


class ChangeResult(BaseModel):
    """The outcome of a toggle or rollout change: before, after, and whether Unleash was changed."""

    name: str
    environment: str
    before: dict[str, Any]
    after: dict[str, Any]
    changed: bool
    propagated: bool = True  # whether what Unleash serves to SDKs showed the change before we answered


class FlagToggle(ActionRequest):
    """Turn a flag on or off in one environment, saying why (the reason goes into the audit log)."""

    name: str = Field(max_length=200)
    environment: str = Field(max_length=200)
    on: bool


class RolloutChange(ActionRequest):
    """Set the rollout % of a flag's gradual rollout in one environment, saying why."""

    name: str = Field(max_length=200)
    environment: str = Field(max_length=200)
    percent: int
