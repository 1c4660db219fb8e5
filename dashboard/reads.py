"""The one scope and lifetime of the pages' cached reads.

Every cached read lives ``CACHE_TTL`` and is keyed by a digest of the configuration, so caches
never mix two configurations; a read over a time window is also keyed by the window widened to
whole buckets of its grain, and that grain (``scope``), so every session looking at the same
range within that time shares one round trip.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import streamlit as st

from core.config import get_settings
from core.domain.models import TimeWindow
from dashboard.services import settings_key
from queries.grain import Grain, grain_for, whole_buckets

CACHE_TTL = timedelta(seconds=30)

cached = st.cache_data(ttl=CACHE_TTL, show_spinner=False)
"""Decorate a read whose result every session may share for ``CACHE_TTL``."""


def configuration() -> str:
    """Return the digest of the current configuration, the first key of every cached read."""
    return settings_key(get_settings())


def scope(window: TimeWindow) -> tuple[str, datetime, datetime, Grain]:
    """Return the key of a windowed read: the configuration, the whole-bucket window and its grain."""
    grain = grain_for(window)
    span = whole_buckets(window, grain)
    return configuration(), span.start, span.end, grain
