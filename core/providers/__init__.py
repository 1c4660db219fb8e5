"""LLM providers as the platform calls them: the adapter interface, the router, the circuit breakers.

The router falls back to another provider when one fails; each provider's circuit breaker keeps
its state in Redis, so every instance sees the same one.
"""
