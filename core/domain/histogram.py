"""Fixed log-spaced latency buckets shared by the rollups (SQL) and the readers (Python).

Bucket 0 holds [0, 1) ms; bucket ``i >= 1`` holds [GROWTH**(i-1), GROWTH**i) ms, capped at
``MAX_BUCKET``. Because every bucket is at most 4 % wide, reporting a bucket's geometric midpoint
is within sqrt(1.04) - 1 = 1.98 % of any value inside it. Histograms are stored sparsely (two
parallel arrays: bucket indexes and counts) so they merge across time buckets and groups by
plain addition.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

GROWTH = 1.04
MAX_BUCKET = 400
RELATIVE_ERROR_BOUND = math.sqrt(GROWTH) - 1.0
_LOG_GROWTH = math.log(GROWTH)


def bucket_sql(column: str) -> str:
    """Return the SQL expression that maps a millisecond column to its bucket index (NULL stays NULL).

    The explicit NULL branch matters: ``least()`` ignores NULL arguments, so without it a NULL
    latency would land in ``MAX_BUCKET``.
    """
    return (
        f"(CASE WHEN {column} IS NULL THEN NULL WHEN {column} < 1 THEN 0 ELSE "
        f"least({MAX_BUCKET}, floor(ln({column}::float8) / {_LOG_GROWTH!r})::int + 1) END)"
    )


def bucket_of(values_ms: npt.ArrayLike) -> npt.NDArray[np.int16]:
    """Map latencies in milliseconds to bucket indexes, exactly as ``bucket_sql`` does."""
    arr = np.asarray(values_ms, dtype=np.float64)
    out = np.zeros(arr.shape, dtype=np.int64)
    positive = arr >= 1
    kept = arr[positive]
    steps = np.log(kept) / _LOG_GROWTH
    # numpy's vectorised log may differ from the C library's (which PostgreSQL's ln() calls) in the
    # last bit; that only matters where the quotient sits on a bucket edge, so those few values are
    # recomputed with math.log, the C library's, and both sides agree on every value.
    edge = np.abs(steps - np.rint(steps)) < 1e-9
    if edge.any():
        steps[edge] = [math.log(v) / _LOG_GROWTH for v in kept[edge].tolist()]
    out[positive] = np.minimum(MAX_BUCKET, np.floor(steps).astype(np.int64) + 1)
    return out.astype(np.int16)


def bucket_bounds(index: int) -> tuple[float, float]:
    """Return the [low, high) millisecond bounds of one bucket."""
    if index <= 0:
        return 0.0, 1.0
    return GROWTH ** (index - 1), GROWTH**index


def bucket_midpoint(index: int) -> float:
    """Return the value reported for a bucket: its geometric midpoint (0.5 ms for bucket 0)."""
    low, high = bucket_bounds(index)
    return 0.5 if index <= 0 else math.sqrt(low * high)


def quantiles(buckets: Sequence[int], counts: Sequence[int], qs: Iterable[float]) -> list[float | None]:
    """Estimates quantiles from one merged histogram; ``None`` for an empty histogram.

    The rank follows ``percentile_cont``: the value at position q * (n - 1) of the sorted values.
    """
    order = np.argsort(np.asarray(buckets, dtype=np.int64), kind="stable")
    b = np.asarray(buckets, dtype=np.int64)[order]
    c = np.asarray(counts, dtype=np.int64)[order]
    total = int(c.sum())
    if total == 0:
        return [None for _ in qs]
    cumulative = np.cumsum(c)
    result: list[float | None] = []
    for q in qs:
        rank = q * (total - 1)
        position = int(np.searchsorted(cumulative, math.floor(rank) + 1, side="left"))
        result.append(bucket_midpoint(int(b[min(position, len(b) - 1)])))
    return result


def midpoint_sql(column: str) -> str:
    """Return the SQL expression of a bucket's reported value (its geometric midpoint)."""
    return f"(CASE WHEN {column} <= 0 THEN 0.5 ELSE exp(({column} - 0.5) * {_LOG_GROWTH!r}) END)"


def quantile_rank_sql(total: str, q: float) -> str:
    """Return the SQL expression of the 1-based cumulative count that holds the q-quantile."""
    return f"(floor({q!r} * ({total} - 1)) + 1)"
