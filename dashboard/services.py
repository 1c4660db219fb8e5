"""The services the dashboard uses, built once per process from the settings."""

from __future__ import annotations

import hashlib
import json

import streamlit as st
from pydantic import SecretStr

from core.adapters.runtime import freeze_startup_heap
from core.adapters.telemetry import serve_metrics
from core.bootstrap import Services, build_services
from core.config import Settings, get_settings


def settings_key(settings: Settings) -> str:
    """Return a digest of every setting, so caches never mix two configurations."""
    values = {name: value.get_secret_value() if isinstance(value, SecretStr) else value for name, value in settings}
    return hashlib.sha256(json.dumps(values, default=str, sort_keys=True).encode()).hexdigest()


def services() -> Services:
    """Return the services for the current settings, shared by every session of this process."""
    settings = get_settings()
    return _services_for(settings_key(settings), settings)


_BUILT: list[Services] = []
"""Every set of services this process built, so ``close_all`` can release their connections."""


def close_all() -> None:
    """Close every set of services this process built and forget them (the next page builds anew)."""
    _services_for.clear()
    while _BUILT:
        _BUILT.pop().close()


@st.cache_resource(show_spinner=False)
def _services_for(key: str, _settings: Settings) -> Services:
    # Keyed by the settings digest: a changed configuration builds new services.
    built = build_services(_settings, app=True)
    _BUILT.append(built)
    # Close intents a crash left without an outcome, and publish the audit chain's head, every minute.
    built.audit_upkeep.start()
    if _settings.metrics_port is not None:
        serve_metrics(_settings.metrics_port)
    # The modules and services live as long as the process: keep full collections off them.
    freeze_startup_heap()
    return built
