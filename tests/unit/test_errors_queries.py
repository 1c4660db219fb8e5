"""The Errors page's hourly path: summary rows expanded into one row per hour and category."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from queries.errors import _expand_hours


def test_hourly_rows_of_one_hour_are_summed_and_every_hour_gets_a_row() -> None:
    one, two, three = (datetime(2026, 11, 26, h, tzinfo=UTC) for h in (1, 2, 3))
    rows = [
        (one, 100, ["internal", "provider_timeout"], [1, 4]),
        (one, 50, ["provider_timeout"], [2]),  # a second series of the same hour (a model two providers share)
        (three, 40, [], []),
    ]
    frame = _expand_hours(rows, pd.date_range(one, periods=3, freq="h"))
    got = [(t, None if pd.isna(c) else c, e, x) for t, c, e, x in frame.itertuples(index=False, name=None)]
    assert got == [
        (pd.Timestamp(one), "internal", 1, 150),
        (pd.Timestamp(one), "provider_timeout", 6, 150),
        (pd.Timestamp(two), None, 0, 0),  # no row at all: nothing ran
        (pd.Timestamp(three), None, 0, 40),  # executions without an error
    ]
