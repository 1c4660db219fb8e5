"""Feature flags: the Unleash adapters, the registry of flags the code knows, and ``FlagService``."""
