"""The run's real Unleash: the server (to stop and restart it), its endpoint and its database."""

from __future__ import annotations

from dataclasses import dataclass

from core.flags.models import UnleashEndpoint
from devstack.unleash import UnleashServer, missing_requirement
from tests.support.tools import require_tool


@dataclass
class RunningUnleash:
    """The run's Unleash: its server (to stop and restart it), endpoint and database URL."""

    server: UnleashServer
    endpoint: UnleashEndpoint
    database_url: str

    def restart(self) -> None:
        """Start the server again after a test stopped it."""
        self.endpoint = self.server.up()


def require_unleash() -> None:
    """Skip (fail in CI) when the stack's Node is missing, saying how to get it (the server itself comes by npm ci)."""
    problem = missing_requirement()
    require_tool(problem is None, "the embedded stack's Node", problem or "")
