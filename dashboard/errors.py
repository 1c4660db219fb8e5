"""The Errors page's cached reads: the error rate by category with its spikes, what changed, the top errors.

Reads are cached per whole-bucket window, provider and model (``reads``); the drill-down links
open the Executions page on a category (and provider/model) over the window shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

import pandas as pd

from core.domain.models import TimeWindow
from core.executions.spikes import detect_spikes
from dashboard import reads
from dashboard.services import services
from dashboard.time_range import format_moment
from queries import errors as error_queries
from queries.grain import Grain

EXECUTIONS_PAGE = "/executions"
TOP_ERRORS_PER_CATEGORY = 5


@dataclass(frozen=True)
class ErrorRates:
    """The window's errors: per bucket and category, where the total left its baseline, and the sums."""

    by_category: pd.DataFrame
    """Errors per bucket and category (``error_rate_by_category``)."""
    spikes: pd.DataFrame
    """Where the total error rate left its baseline: ``bucket_start``, ``rate``, ``baseline``."""
    executions: int
    errors: int

    @property
    def rate(self) -> float | None:
        """Failed and timed-out executions per execution, or None without executions."""
        return self.errors / self.executions if self.executions else None

    @property
    def spike_notice(self) -> str | None:
        """Say when the error rate last left its baseline, or None without a spike."""
        if self.spikes.empty:
            return None
        latest = self.spikes.iloc[-1]
        return (
            f"The error rate left its baseline at {latest['bucket_start']:%Y-%m-%d %H:%M} UTC "
            f"({latest['rate']:.1%} against {latest['baseline']:.1%})."
        )


def error_rates(window: TimeWindow, provider: str | None, model: str | None) -> ErrorRates:
    """Return the window's errors per bucket and category, its spikes, and its executions and errors."""
    return _error_rates(*reads.scope(window), provider, model)


def category_changes(window: TimeWindow, provider: str | None, model: str | None) -> pd.DataFrame:
    """Return each category against the previous window of the same length, with its drill-down link."""
    changes = _category_changes(*reads.scope(window), provider, model)
    changes["executions"] = _links(changes["category"], window, provider, model)
    return changes


def top_errors(window: TimeWindow, provider: str | None, model: str | None) -> pd.DataFrame:
    """Return the top error codes and messages per category of the window, with their drill-down links."""
    top = _top_errors(*reads.scope(window), provider, model)
    top["executions_link"] = _links(top["category"], window, provider, model)
    return top


def executions_link(
    window: TimeWindow, *, category: str | None = None, provider: str | None = None, model: str | None = None
) -> str:
    """Return the Executions page's link for a category (and provider/model) over a window."""
    params = {"category": category, "provider": provider, "model": model}
    query = {k: v for k, v in params.items() if v}
    query.update({"from": format_moment(window.start), "to": format_moment(window.end)})
    return f"{EXECUTIONS_PAGE}?{urlencode(query)}"


def _links(categories: pd.Series, window: TimeWindow, provider: str | None, model: str | None) -> list[str]:
    return [executions_link(window, category=c, provider=provider, model=model) for c in categories]


@reads.cached
def _error_rates(
    settings: str, start: datetime, end: datetime, grain: Grain, provider: str | None, model: str | None
) -> ErrorRates:
    with services().db.read() as conn:
        by_category = error_queries.error_rate_by_category(
            conn, TimeWindow(start=start, end=end), grain=grain, provider=provider, model=model
        )
    totals = error_queries.total_error_rate(by_category)
    return ErrorRates(
        by_category=by_category,
        spikes=detect_spikes(totals),
        executions=int(totals["executions"].sum()),
        errors=int(totals["errors"].sum()),
    )


@reads.cached
def _top_errors(
    settings: str, start: datetime, end: datetime, grain: Grain, provider: str | None, model: str | None
) -> pd.DataFrame:
    with services().db.read() as conn:
        return error_queries.top_errors(
            conn,
            TimeWindow(start=start, end=end),
            grain=grain,
            provider=provider,
            model=model,
            limit=TOP_ERRORS_PER_CATEGORY,
        )


@reads.cached
def _category_changes(
    settings: str, start: datetime, end: datetime, grain: Grain, provider: str | None, model: str | None
) -> pd.DataFrame:
    with services().db.read() as conn:
        return error_queries.category_changes(
            conn, TimeWindow(start=start, end=end), grain=grain, provider=provider, model=model
        )
