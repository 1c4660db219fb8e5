"""Domain models: the validated time window and the staff actor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from core.domain.models import MAX_WINDOW, Actor, Role, TimeWindow

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def test_a_valid_window() -> None:
    window = TimeWindow(start=T0, end=T0 + timedelta(hours=6))
    assert window.span == timedelta(hours=6)


def test_reversed_window_is_refused() -> None:
    with pytest.raises(ValidationError, match="end of the time range must be after its start"):
        TimeWindow(start=T0, end=T0 - timedelta(minutes=1))


def test_empty_window_is_refused() -> None:
    with pytest.raises(ValidationError, match="must be after its start"):
        TimeWindow(start=T0, end=T0)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (datetime(2026, 11, 1), datetime(2026, 11, 2)),
        (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2)),
        (datetime(2026, 11, 1), datetime(2026, 11, 2, tzinfo=UTC)),
    ],
)
def test_naive_datetimes_are_refused(start: datetime, end: datetime) -> None:
    with pytest.raises(ValidationError, match="time zone"):
        TimeWindow(start=start, end=end)


def test_too_wide_window_is_refused() -> None:
    TimeWindow(start=T0, end=T0 + MAX_WINDOW)  # exactly the limit is allowed
    with pytest.raises(ValidationError, match=f"at most {MAX_WINDOW.days} days"):
        TimeWindow(start=T0, end=T0 + MAX_WINDOW + timedelta(seconds=1))


def test_other_time_zones_are_accepted_and_compared_as_instants() -> None:
    paris = timezone(timedelta(hours=1))
    window = TimeWindow(start=datetime(2026, 11, 1, 13, 0, tzinfo=paris), end=T0 + timedelta(hours=1))
    assert window.span == timedelta(hours=1)


def test_last_ends_now_in_utc() -> None:
    now = datetime(2026, 11, 26, 5, 0, tzinfo=timezone(timedelta(hours=2)))
    window = TimeWindow.last(timedelta(hours=24), now=now)
    assert window.end == now
    assert window.end.tzinfo == UTC
    assert window.start == now - timedelta(hours=24)


def test_window_is_immutable() -> None:
    window = TimeWindow(start=T0, end=T0 + timedelta(hours=1))
    with pytest.raises(ValidationError):
        window.end = T0 + timedelta(hours=2)  # type: ignore[misc]


def test_actor_needs_an_id_and_a_known_role() -> None:
    with pytest.raises(ValidationError):
        Actor(id="", role=Role.ADMIN)
    with pytest.raises(ValidationError):
        Actor(id="someone@krowoc.test", role="superuser")  # type: ignore[arg-type]
    assert Actor(id="someone@krowoc.test", role="support").role is Role.SUPPORT  # type: ignore[arg-type]
