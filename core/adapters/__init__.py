"""Infrastructure: PostgreSQL, Redis, the admin-events stream, Prometheus, metrics and logging, process tuning.

Adapters wrap one library each and turn its failures into ``core.domain.exceptions``; they know
the domain's vocabulary and nothing of the services built on them.
"""
