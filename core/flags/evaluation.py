"""Flag evaluation through the real Unleash Python client, with a backup file on disk.

The client polls ``/api/client/features`` every ``refresh_seconds`` and writes what it got to a
``FileCache`` under the backup folder; when Unleash is down (even at start) it evaluates from that
backup. A flag it has never seen answers its registered default.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from UnleashClient import UnleashClient  # type: ignore[attr-defined]
from UnleashClient.cache import FileCache

from core.flags.models import Evaluation
from core.flags.registry import default_for

APP_NAME = "krowoc-admin"


class FlagEvaluator:
    """One Unleash client for this process, started on first use."""

    def __init__(self, api_url: str, client_token: str, backup_dir: Path, *, refresh_seconds: int = 5) -> None:
        self.api_url = api_url
        self.client_token = client_token
        self.backup_dir = backup_dir
        self.refresh_seconds = refresh_seconds
        self._client: UnleashClient | None = None
        self._lock = threading.Lock()

    def _started(self) -> UnleashClient:
        with self._lock:
            if self._client is None:
                self.backup_dir.mkdir(parents=True, exist_ok=True)
                client = UnleashClient(
                    url=self.api_url,
                    app_name=APP_NAME,
                    instance_id=f"{APP_NAME}-{id(self):x}",
                    refresh_interval=self.refresh_seconds,
                    custom_headers={"Authorization": self.client_token},
                    disable_metrics=True,
                    disable_registration=True,
                    request_timeout=3,
                    request_retries=1,
                    cache=FileCache(APP_NAME, directory=str(self.backup_dir)),
                )
                client.initialize_client()
                self._client = client
            return self._client

    def known(self) -> set[str]:
        """Return the flags the client currently knows (from Unleash or its backup)."""
        return set(self._started().feature_definitions())

    def evaluate(self, name: str, context: dict[str, Any] | None = None) -> Evaluation:
        """Asks the client whether a flag is on for a context; unknown flags answer their default."""
        client = self._started()
        default = default_for(name)
        known = name in client.feature_definitions()
        enabled = client.is_enabled(name, context or {}, fallback_function=lambda _name, _context: default)
        return Evaluation(name=name, enabled=bool(enabled), default=default, known_to_client=known)

    def close(self) -> None:
        """Stop the client's polling (its backup stays on disk)."""
        with self._lock:
            if self._client is not None:
                self._client.destroy()
                self._client = None
