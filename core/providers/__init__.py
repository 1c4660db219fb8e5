"""LLM providers as the platform calls them: the adapter interface, the router
with fallback and a circuit breaker per provider whose state lives in Redis."""
