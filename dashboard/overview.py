"""The Overview's cached reads: the window's totals, its timeline with incident markers, the platform's pulse."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from core.domain.models import TimeWindow
from core.executions.spikes import detect_spikes
from core.health import PlatformPulse
from dashboard import formats, reads
from dashboard.services import services
from queries import overview as overview_queries
from queries.grain import Grain
from queries.overview import ExecutionTotals


@dataclass(frozen=True)
class Timeline:
    """What the Overview draws on one time axis, per bucket of the whole-bucket window."""

    executions: pd.DataFrame
    """Executions, errors, executions per minute and error rate (``executions_over_time``)."""
    latency: pd.DataFrame
    """The p95 execution latency (``p95_latency_over_time``)."""
    incidents: pd.DataFrame
    """Where the error rate leaves its baseline: ``bucket_start``, ``rate``, ``baseline``."""


def execution_totals(window: TimeWindow) -> ExecutionTotals:
    """Return the window's executions, error rate, p95 latency and cost."""
    return _execution_totals(*reads.scope(window))


def timeline(window: TimeWindow) -> Timeline:
    """Return the window's throughput, error rate and p95 latency per bucket, and where errors spiked."""
    return _timeline(*reads.scope(window))


def platform_pulse() -> PlatformPulse:
    """Return the cache hit ratio (5 min), flags changed in 24 h and the dependencies' overall health."""
    return _platform_pulse(reads.configuration())


def cache_hit_ratio_text(pulse: PlatformPulse) -> str:
    """Write the pulse's cache hit ratio, or say that Redis is down."""
    return "Redis down" if pulse.cache_down else formats.share(pulse.cache_hit_ratio)


def flags_changed_text(pulse: PlatformPulse) -> str:
    """Write how many flags changed in the last 24 hours, or a dash when the audit log did not answer."""
    return formats.NOT_AVAILABLE if pulse.flags_changed_24h is None else formats.count(pulse.flags_changed_24h)


def dependencies_text(pulse: PlatformPulse) -> str:
    """Write the dependencies' overall health, naming the ones that are down."""
    return pulse.health.value + (f": {', '.join(pulse.unhealthy)} down" if pulse.unhealthy else "")


def incidents_caption(incidents: pd.DataFrame) -> str:
    """Say how many incident markers the timeline has and when the first one was."""
    first = incidents["bucket_start"].iloc[0]
    return (
        f"{len(incidents)} incident marker(s): the error rate left its baseline, first at "
        f"{first:%Y-%m-%d %H:%M} UTC. The Errors page breaks them down by category."
    )


@reads.cached
def _execution_totals(settings: str, start: datetime, end: datetime, grain: Grain) -> ExecutionTotals:
    with services().db.read() as conn:
        return overview_queries.execution_totals(conn, TimeWindow(start=start, end=end), grain=grain)


@reads.cached
def _timeline(settings: str, start: datetime, end: datetime, grain: Grain) -> Timeline:
    window = TimeWindow(start=start, end=end)
    with services().db.read() as conn:
        executions = overview_queries.executions_over_time(conn, window, grain=grain)
        latency = overview_queries.p95_latency_over_time(conn, window, grain=grain)
    return Timeline(executions=executions, latency=latency, incidents=_incidents(executions))


def _incidents(executions: pd.DataFrame) -> pd.DataFrame:
    if executions.empty:
        return pd.DataFrame({"bucket_start": [], "rate": [], "baseline": []})
    return detect_spikes(executions.rename(columns={"error_rate": "rate"}))


@reads.cached
def _platform_pulse(settings: str) -> PlatformPulse:
    return services().pulse.read()
