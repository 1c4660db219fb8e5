"""Every dependency's health in one shape, and the platform's pulse for the Overview."""

from core.health.checks import HealthCheck, HealthStatus, overall
from core.health.pulse import PlatformPulse, PulseReader
from core.health.service import HealthService

__all__ = ["HealthCheck", "HealthService", "HealthStatus", "PlatformPulse", "PulseReader", "overall"]
