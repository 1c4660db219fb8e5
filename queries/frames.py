"""Data frames from query rows, column by column.

Building a frame from SQLAlchemy ``Row`` objects, or letting pandas infer a column of
timezone-aware datetimes, costs several times the query itself on a month of hourly rows; this
transposes the rows once and converts timestamp columns through their epoch seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd


def frame_of(rows: Sequence[Sequence[Any]], columns: Sequence[str], *, times: Iterable[str] = ()) -> pd.DataFrame:
    """Build a frame from rows; ``times`` names the columns holding datetimes (returned in UTC)."""
    timed = set(times)
    data: list[tuple[Any, ...]] = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
    out: dict[str, Any] = {}
    for name, values in zip(columns, data, strict=True):
        if name in timed:
            seconds = np.array([np.nan if v is None else v.timestamp() for v in values], dtype=np.float64)
            out[name] = pd.to_datetime(seconds, unit="s", utc=True)
        else:
            out[name] = pd.Series(list(values)) if values else pd.Series([], dtype=object)
    return pd.DataFrame(out)
