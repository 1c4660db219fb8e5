"""The seed's and the simulator's traffic profiles: per model, per error category, per tier, and the names drawn.

The providers and models come from ``core.domain.catalog``; a profile adds what traffic on a model
looks like (its share of executions, its latency, its price and its quality).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.domain.catalog import CATALOG
from core.domain.models import ErrorCategory, ExecutionStatus, Tier


@dataclass(frozen=True)
class ModelProfile:
    """What traffic on one catalogued model looks like."""

    provider: str
    model: str
    share: float
    median_ms: float
    sigma: float
    price_in: float  # USD per 1k input tokens
    price_out: float  # USD per 1k output tokens
    quality: float  # mean score of a succeeded execution


# Per catalogued model: share of executions, median latency (ms), its lognormal sigma, USD per 1k
# input and output tokens, mean quality score of a succeeded execution.
_TRAFFIC: dict[tuple[str, str], tuple[float, float, float, float, float, float]] = {
    ("openai", "gpt-4o"): (0.20, 1900, 0.45, 0.0025, 0.010, 0.80),
    ("openai", "gpt-4o-mini"): (0.18, 750, 0.40, 0.00015, 0.0006, 0.70),
    ("openai", "o3-mini"): (0.06, 5200, 0.55, 0.0011, 0.0044, 0.84),
    ("anthropic", "claude-sonnet-4"): (0.16, 2300, 0.45, 0.003, 0.015, 0.83),
    ("anthropic", "claude-haiku-3.5"): (0.10, 850, 0.40, 0.0008, 0.004, 0.71),
    ("google", "gemini-2.0-flash"): (0.12, 620, 0.38, 0.0001, 0.0004, 0.68),
    ("google", "gemini-1.5-pro"): (0.07, 2600, 0.50, 0.00125, 0.005, 0.78),
    ("mistral", "mistral-large"): (0.06, 1600, 0.45, 0.002, 0.006, 0.74),
    ("mistral", "mistral-small"): (0.05, 520, 0.38, 0.0002, 0.0006, 0.64),
}

MODELS: tuple[ModelProfile, ...] = tuple(
    ModelProfile(entry.provider, entry.model, *_TRAFFIC[(entry.provider, entry.model)]) for entry in CATALOG
)
"""One profile per catalogued model, in catalogue order (a model without a profile fails at import)."""

# Error categories: (status, base rate per execution, HTTP-ish codes, messages).
ERRORS: dict[ErrorCategory, tuple[ExecutionStatus, float, tuple[str, ...], tuple[str, ...]]] = {
    ErrorCategory.PROVIDER_TIMEOUT: (
        ExecutionStatus.TIMED_OUT,
        0.004,
        ("timeout",),
        ("Provider did not answer within 60 s", "Read timed out after 60000 ms"),
    ),
    ErrorCategory.PROVIDER_RATE_LIMITED: (
        ExecutionStatus.FAILED,
        0.006,
        ("429", "rate_limit_exceeded"),
        ("Rate limit reached for requests per minute", "Too many requests, please slow down"),
    ),
    ErrorCategory.PROVIDER_UNAVAILABLE: (
        ExecutionStatus.FAILED,
        0.003,
        ("503", "502", "500"),
        (
            "Service unavailable",
            "Bad gateway from upstream",
            "The server had an error processing your request",
        ),
    ),
    ErrorCategory.PROVIDER_AUTH: (ExecutionStatus.FAILED, 0.0002, ("401",), ("Invalid API key provided",)),
    ErrorCategory.INVALID_REQUEST: (
        ExecutionStatus.FAILED,
        0.004,
        ("400", "invalid_request_error"),
        (
            "Invalid value for 'temperature'",
            "Unsupported parameter: 'logprobs'",
            "Malformed JSON in tool call",
        ),
    ),
    ErrorCategory.CONTENT_FILTERED: (
        ExecutionStatus.FAILED,
        0.003,
        ("content_filter", "safety"),
        ("Output blocked by content filter", "Response flagged by safety system"),
    ),
    ErrorCategory.CONTEXT_LENGTH_EXCEEDED: (
        ExecutionStatus.FAILED,
        0.002,
        ("context_length_exceeded",),
        ("This model's maximum context length is 128000 tokens", "Prompt is too long"),
    ),
    ErrorCategory.QUOTA_EXCEEDED: (
        ExecutionStatus.FAILED,
        0.002,
        ("tier_quota",),
        ("Monthly execution quota of your tier reached", "Daily token budget exhausted"),
    ),
    ErrorCategory.INTERNAL: (
        ExecutionStatus.FAILED,
        0.001,
        ("internal",),
        ("Unexpected error while streaming the response",),
    ),
}
assert set(ERRORS) == set(ErrorCategory), "every error category has a seeded profile"
CATEGORIES: list[str] = [category.value for category in ERRORS]

# Per tier, in the Tier enum's order: the share of users and their relative activity.
_TIER_MIX: dict[Tier, tuple[float, float]] = {
    Tier.FREE: (0.70, 1.0),
    Tier.PRO: (0.20, 3.0),
    Tier.TEAM: (0.08, 6.0),
    Tier.ENTERPRISE: (0.02, 12.0),
}
TIERS: tuple[str, ...] = tuple(tier.value for tier in Tier)
TIER_SHARE: tuple[float, ...] = tuple(_TIER_MIX[tier][0] for tier in Tier)
TIER_ACTIVITY: tuple[float, ...] = tuple(_TIER_MIX[tier][1] for tier in Tier)

FIRST = (
    "ada",
    "grace",
    "alan",
    "linus",
    "ken",
    "barbara",
    "edsger",
    "margaret",
    "dennis",
    "frances",
    "john",
    "radia",
    "tim",
    "sophie",
    "yuki",
    "amara",
    "mateo",
    "lena",
    "omar",
    "priya",
)
LAST = (
    "lovelace",
    "hopper",
    "turing",
    "torvalds",
    "thompson",
    "liskov",
    "dijkstra",
    "hamilton",
    "ritchie",
    "allen",
    "backus",
    "perlman",
    "berners",
    "wilson",
    "tanaka",
    "okafor",
    "silva",
    "novak",
    "haddad",
    "iyer",
)
# The daily and weekly shape of traffic, shared by the seed and the live simulator: a wave over
# the day peaking mid-afternoon UTC, and quieter weekends.
DAILY_PEAK_HOUR = 15.0
DAILY_SWING = 0.65
WEEKEND_SHARE = 0.6
MEAN_SHAPE = (5 + 2 * WEEKEND_SHARE) / 7
"""The shape's mean over a week: a rate divided by it keeps its weekly average."""


def traffic_shape(at: datetime) -> float:
    """Return the relative traffic at ``at`` (UTC) in the seed's daily and weekly shape (mean MEAN_SHAPE)."""
    hour = at.hour + at.minute / 60.0
    daily = 1.0 + DAILY_SWING * math.cos((hour - DAILY_PEAK_HOUR) / 24.0 * 2 * math.pi)
    return daily * (WEEKEND_SHARE if at.weekday() >= 5 else 1.0)


DOMAINS = ("example.com", "acme.io", "mail.test", "corp.example", "studio.dev")
TOPICS = ("summarize", "translate", "classify", "extract", "draft", "review", "explain", "rewrite")
OBJECTS = (
    "support ticket",
    "contract clause",
    "release notes",
    "product review",
    "sales email",
    "SQL query",
    "meeting transcript",
    "bug report",
    "job posting",
    "research abstract",
)
TAGS = ("support", "legal", "marketing", "engineering", "sales", "hr", "research", "ops")


@dataclass(frozen=True)
class SeededIncident:
    """An incident written into the seeded history: a category's extra rate on a provider for a while."""

    name: str
    provider: str
    category: str
    start: datetime
    duration: timedelta
    rate: float  # extra probability of the category for that provider during the incident
    latency_factor: float = 1.0


def plan_incidents(start: datetime, end: datetime) -> list[SeededIncident]:
    """Places the three incidents at fixed points of the seeded range."""
    span = end - start

    def at(fraction: float) -> datetime:
        return (start + span * fraction).replace(second=0, microsecond=0)

    return [
        SeededIncident("provider outage", "openai", "provider_unavailable", at(0.72), timedelta(minutes=45), 0.55, 0.3),
        SeededIncident("rate-limit storm", "anthropic", "provider_rate_limited", at(0.41), timedelta(hours=2), 0.22),
        SeededIncident("content-filter spike", "google", "content_filtered", at(0.18), timedelta(hours=3), 0.12),
    ]
