"""What every rollup read shares: the grain a window is read at, its whole-bucket bounds, the filters.

Grain: the minute rollup (``execution_rollup_minute``) for windows of up to six hours, the hour
grain beyond (``grain_for``). A window is widened to whole buckets of its grain
(``whole_buckets``): a rollup bucket is either read entirely or not at all. The Overview, Errors
and Latency queries all bound their reads with ``bounds`` and narrow them to one provider or
model with ``PROVIDER_MODEL_FILTER`` (minute rollup, raw table) or ``summary_rows`` (the hourly
summaries), so the three pages agree on what a range and a filter cover.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Any

from sqlalchemy import TextClause, text

from core.domain.models import TimeWindow

MINUTE_GRAIN_LIMIT = timedelta(hours=6)
"""The longest window read from the minute rollup; longer ones read the hour rollup."""


class Grain(StrEnum):
    """The time bucket a query reads and returns: one rollup table per grain."""

    MINUTE = "minute"
    HOUR = "hour"

    @property
    def table(self) -> str:
        """The rollup table of this grain."""
        return f"execution_rollup_{self.value}"

    @property
    def step(self) -> timedelta:
        """The length of one bucket."""
        return timedelta(minutes=1) if self is Grain.MINUTE else timedelta(hours=1)


def grain_for(window: TimeWindow) -> Grain:
    """Choose the rollup to read for a window: minutes up to six hours, hours beyond."""
    return Grain.MINUTE if window.span <= MINUTE_GRAIN_LIMIT else Grain.HOUR


def whole_buckets(window: TimeWindow, grain: Grain) -> TimeWindow:
    """Widen a window to whole buckets of a grain: start rounded down, end rounded up, in UTC."""
    start = _floor(window.start, grain)
    end = _floor(window.end, grain)
    if end < window.end.astimezone(UTC):
        end += grain.step
    return TimeWindow(start=start, end=end)


def _floor(moment: datetime, grain: Grain) -> datetime:
    utc = moment.astimezone(UTC).replace(second=0, microsecond=0)
    return utc.replace(minute=0) if grain is Grain.HOUR else utc


def bounds(window: TimeWindow, grain: Grain | None = None) -> tuple[Grain, dict[str, Any]]:
    """Return the grain a window is read at (the given one, else ``grain_for``) and its bound parameters.

    The parameters are ``start`` and ``end`` (the window widened to whole buckets) and ``step``
    (one bucket, as an interval), ready to bind to a query.
    """
    chosen = grain or grain_for(window)
    span = whole_buckets(window, chosen)
    return chosen, {"start": span.start, "end": span.end, "step": chosen.step}


@cache
def sql_for(template: str, grain: Grain, **parts: str) -> TextClause:
    """Return a query template for a grain: ``{rollup}`` becomes its rollup table, other names ``parts``.

    Only text from the query modules goes into the SQL (the Grain enum's table and the modules'
    own fragments); everything from the caller travels as a bound parameter.
    """
    return text(template.format(rollup=grain.table, **parts))


PROVIDER_MODEL_FILTER = """
      AND (CAST(:provider AS text) IS NULL OR provider = :provider)
      AND (CAST(:model AS text) IS NULL OR model = :model)"""
"""Narrow a read of the minute rollup or the raw table to ``:provider`` and ``:model`` (NULL: all)."""


def summary_rows(provider: str | None, model: str | None, *, each: str | None = None) -> str:
    """Return which rows of the hourly summaries answer for a provider/model filter (a SQL condition).

    A named model reads that model's rows, a provider alone its '*' row, neither the platform's
    '*' row; ``each="model"`` or ``"provider"`` asks for one row per model or provider instead.
    Only bound parameters (``:provider``, ``:model``) carry the caller's values.
    """
    provider_filter = "(CAST(:provider AS text) IS NULL OR provider = :provider)"
    if each == "model" or model is not None:
        return f"model <> '*' AND {provider_filter} AND (CAST(:model AS text) IS NULL OR model = :model)"
    if each == "provider" or provider is not None:
        return f"provider <> '*' AND model = '*' AND {provider_filter}"
    return "provider = '*' AND model = '*'"
