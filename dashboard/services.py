"""The services the dashboard uses, built once per process from the settings."""

from __future__ import annotations

import hashlib
import json

import streamlit as st
from pydantic import SecretStr

from core.adapters.runtime import freeze_startup_heap
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


@st.cache_resource(show_spinner=False)
def _services_for(key: str, _settings: Settings) -> Services:
    # Keyed by the settings digest: a changed configuration builds new services.
    built = build_services(_settings)
    # The modules and services live as long as the process: keep full collections off them.
    freeze_startup_heap()
    return built
