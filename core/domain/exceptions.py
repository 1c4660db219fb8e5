"""The errors a person can cause or act on, and one hierarchy for a dependency that is away.

Adapters translate their library's exceptions into these once (psycopg and SQLAlchemy into
``DatabaseUnavailable``, redis-py into ``RedisUnavailable``, requests into ``UnleashUnavailable``
and ``PrometheusUnavailable``); services let them travel; the dashboard's error boundary, the
command line and the API catch ``DependencyUnavailable`` once and say which part is down.
"""

from __future__ import annotations


class InvalidInput(ValueError):
    """Input a person gave that cannot be used; the message says what to change."""


class UnsafeConfiguration(RuntimeError):
    """The product is set up in a way that would weaken it; the message says what to change."""


class DependencyUnavailable(RuntimeError):
    """A server the product depends on did not answer; the message says which and what was (not) done."""

    component = "a dependency"


class DatabaseUnavailable(DependencyUnavailable):
    """PostgreSQL cannot be reached, or did not answer in time."""

    component = "PostgreSQL"


class RedisUnavailable(DependencyUnavailable):
    """Redis (the cache, rate limits, breakers, admin events) did not answer."""

    component = "Redis"


class SessionStoreUnavailable(RedisUnavailable):
    """The platform's session store (Redis) did not answer, so a user's sessions could not be dropped."""

    component = "the session store"


class UnleashUnavailable(DependencyUnavailable):
    """Unleash cannot be reached (or is not configured); flag changes are refused until it answers."""

    component = "Unleash"


class PrometheusUnavailable(DependencyUnavailable):
    """Prometheus did not answer (or its breaker is open); the message says which."""

    component = "Prometheus"
