"""Cached reads for the pages: each opens a read-only transaction and runs one query module's query.

Results are cached for ``CACHE_TTL`` per configuration and per whole-bucket window, so every
session looking at the same range within that time shares one database round trip.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import streamlit as st

from core.config import get_settings
from core.domain.models import TimeWindow
from core.executions.spikes import detect_spikes
from core.health import PlatformPulse
from dashboard.services import services, settings_key
from queries import overview
from queries.overview import ExecutionTotals, Grain

CACHE_TTL = timedelta(seconds=30)


def _scope(window: TimeWindow) -> tuple[str, datetime, datetime, Grain]:
    grain = overview.grain_for(window)
    span = overview.whole_buckets(window, grain)
    return settings_key(get_settings()), span.start, span.end, grain


def execution_totals(window: TimeWindow) -> ExecutionTotals:
    """Return the window's executions, error rate, p95 latency and cost."""
    return _execution_totals(*_scope(window))


def executions_over_time(window: TimeWindow) -> pd.DataFrame:
    """Return executions per minute and error rate per time bucket of the window."""
    return _executions_over_time(*_scope(window))


def p95_latency_over_time(window: TimeWindow) -> pd.DataFrame:
    """Return the p95 execution latency per time bucket of the window."""
    return _p95_latency_over_time(*_scope(window))


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def _execution_totals(settings: str, start: datetime, end: datetime, grain: Grain) -> ExecutionTotals:
    with services().db.read() as conn:
        return overview.execution_totals(conn, TimeWindow(start=start, end=end), grain=grain)


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def _executions_over_time(settings: str, start: datetime, end: datetime, grain: Grain) -> pd.DataFrame:
    with services().db.read() as conn:
        return overview.executions_over_time(conn, TimeWindow(start=start, end=end), grain=grain)


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def _p95_latency_over_time(settings: str, start: datetime, end: datetime, grain: Grain) -> pd.DataFrame:
    with services().db.read() as conn:
        return overview.p95_latency_over_time(conn, TimeWindow(start=start, end=end), grain=grain)


# -- the other parts of the platform, for the Overview's headline row -----------------------------


PULSE_TTL = timedelta(seconds=15)


def platform_pulse() -> PlatformPulse:
    """Return the cache hit ratio (5 min), flags changed in 24 h and the dependencies' overall health."""
    return _platform_pulse(settings_key(get_settings()))


@st.cache_data(ttl=PULSE_TTL, show_spinner=False)
def _platform_pulse(settings: str) -> PlatformPulse:
    return services().pulse.read()


def incidents(series: pd.DataFrame) -> pd.DataFrame:
    """Return where the error rate of an executions-over-time frame leaves its baseline."""
    if series.empty:
        return pd.DataFrame({"bucket_start": [], "rate": [], "baseline": []})
    return detect_spikes(series.rename(columns={"error_rate": "rate"}))
