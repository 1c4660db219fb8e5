"""The time ranges pages offer, and how they are written in a link's query string.

A preset is written ``?range=24h``; a custom range ``?range=custom&from=2026-11-20T10:00Z&to=...``
(UTC, minute precision). Reading a link never raises: what cannot be used is reported as a
problem and the caller falls back to the default range.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from core.domain.exceptions import InvalidInput
from core.domain.models import MAX_WINDOW, TimeWindow

RANGE_PARAM = "range"
FROM_PARAM = "from"
TO_PARAM = "to"
LINK_PARAMS = (RANGE_PARAM, FROM_PARAM, TO_PARAM)

PRESETS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
CUSTOM = "custom"
DEFAULT_PRESET = "24h"
LABELS: dict[str, str] = {
    "1h": "1 h",
    "6h": "6 h",
    "24h": "24 h",
    "7d": "7 d",
    "30d": "30 d",
    CUSTOM: "Custom",
}
DESCRIPTIONS: dict[str, str] = {
    "1h": "the last hour",
    "6h": "the last 6 hours",
    "24h": "the last 24 hours",
    "7d": "the last 7 days",
    "30d": "the last 30 days",
}
_LINK_FORMAT = "%Y-%m-%dT%H:%MZ"
_SHOWN_FORMAT = "%Y-%m-%d %H:%M"


def parse_moment(value: str) -> datetime:
    """Read an ISO 8601 date and time from a link; one without a zone is taken as UTC."""
    moment = datetime.fromisoformat(value.strip())
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def format_moment(moment: datetime) -> str:
    """Write a moment for a link: UTC, to the minute."""
    return moment.astimezone(UTC).strftime(_LINK_FORMAT)


def describe(window: TimeWindow) -> str:
    """Write a window for people: its two ends in UTC, to the minute."""
    start = window.start.astimezone(UTC).strftime(_SHOWN_FORMAT)
    end = window.end.astimezone(UTC).strftime(_SHOWN_FORMAT)
    return f"{start} → {end} UTC"


@dataclass(frozen=True)
class RangeChoice:
    """A preset (``"24h"``) or a custom range with both ends in UTC."""

    preset: str
    start: datetime | None = None
    end: datetime | None = None

    @classmethod
    def default(cls) -> RangeChoice:
        """Return the range pages open with."""
        return cls(DEFAULT_PRESET)

    @classmethod
    def custom(cls, start: datetime, end: datetime) -> RangeChoice:
        """Return a custom range, its ends converted to UTC and cut to the minute."""
        return cls(CUSTOM, _minute(start), _minute(end))

    def window(self, now: datetime) -> TimeWindow:
        """Return the window this choice names at ``now``; refuse a reversed or too long range."""
        if self.preset in PRESETS:
            return TimeWindow.last(PRESETS[self.preset], now=now)
        if self.start is None or self.end is None:
            raise InvalidInput("A custom time range needs both a start and an end.")
        if self.end <= self.start:
            raise InvalidInput(
                f"The end of the time range ({self.end:{_SHOWN_FORMAT}} UTC) must be after its start "
                f"({self.start:{_SHOWN_FORMAT}} UTC): change From or To."
            )
        if self.end - self.start > MAX_WINDOW:
            raise InvalidInput(
                f"A time range may span at most {MAX_WINDOW.days} days; this one spans "
                f"{(self.end - self.start).days} days."
            )
        return TimeWindow(start=self.start, end=self.end)

    def query_params(self) -> dict[str, str]:
        """Return the query string parameters that name this choice."""
        if self.preset == CUSTOM and self.start is not None and self.end is not None:
            return {
                RANGE_PARAM: CUSTOM,
                FROM_PARAM: format_moment(self.start),
                TO_PARAM: format_moment(self.end),
            }
        return {RANGE_PARAM: self.preset}


def _minute(moment: datetime) -> datetime:
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.replace(second=0, microsecond=0)


@dataclass(frozen=True)
class LinkedRange:
    """What a link's query string says about the time range."""

    choice: RangeChoice | None
    """The range the link names; None when it names none or none that can be used."""
    problem: str | None = None
    """Why the link's range cannot be used, in words for the person who opened it."""


def from_query_params(params: Mapping[str, str]) -> LinkedRange:
    """Read the time range from a link's query parameters, reporting values that cannot be used."""
    preset = params.get(RANGE_PARAM, "").strip()
    start_text, end_text = params.get(FROM_PARAM), params.get(TO_PARAM)
    fallback = f"showing {DESCRIPTIONS[DEFAULT_PRESET]} instead"
    if start_text is not None or end_text is not None or preset == CUSTOM:
        if not start_text or not end_text:
            return LinkedRange(None, f"The link's custom time range needs both `from` and `to`; {fallback}.")
        try:
            start, end = parse_moment(start_text), parse_moment(end_text)
        except ValueError:
            return LinkedRange(
                None,
                f"The link's time range (from `{start_text}` to `{end_text}`) is not a date and time "
                f"such as 2026-11-20T10:00Z; {fallback}.",
            )
        return LinkedRange(RangeChoice.custom(start, end))
    if not preset:
        return LinkedRange(None)
    if preset not in PRESETS:
        known = ", ".join(PRESETS)
        return LinkedRange(None, f"The link's time range `{preset}` is not one of {known}; {fallback}.")
    return LinkedRange(RangeChoice(preset))
