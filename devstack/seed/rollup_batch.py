"""The rollups' aggregation over an in-memory batch of generated executions, for the seed's bulk load.

It computes exactly what ``core.executions.rollups.MINUTE_FROM_RAW`` computes in SQL (a test
compares both on the same rows), from a pyarrow batch, so the seed writes the minute and hour
rollups in the same pass that loads the executions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core.domain.histogram import bucket_of

_UNITS = {"minute": "datetime64[m]", "hour": "datetime64[h]"}


def _histogram_strings(
    group: npt.NDArray[Any], values: npt.NDArray[np.float64], present: npt.NDArray[np.bool_], groups: int
) -> tuple[pa.Array, pa.Array]:
    """Build the sparse histogram of each group as PostgreSQL array literals (buckets, counts)."""
    g = group[present]
    b = bucket_of(values[present]).astype(np.int64)
    pairs, counts = np.unique(g * 1024 + b, return_counts=True)
    pair_group = pairs // 1024
    offsets = np.searchsorted(pair_group, np.arange(groups + 1)).astype(np.int32)

    def literal(items: npt.NDArray[np.int64]) -> pa.Array:
        listed = pa.ListArray.from_arrays(pa.array(offsets), pa.array(items).cast(pa.string()))
        return pc.binary_join_element_wise("{", pc.binary_join(listed, ","), "}", "")

    return literal(pairs % 1024), literal(counts.astype(np.int64))


def rollup_batch(batch: pa.Table, unit: str) -> pa.Table:
    """Aggregate a batch of executions exactly as the SQL rollup does, at ``unit`` grain.

    Every bucket of ``unit`` must lie wholly inside the batch. Money and scores are summed as
    integers (micro-dollars, thousandths) so the result equals PostgreSQL's numeric sums.
    """
    created = batch.column("created_at").cast(pa.timestamp("us")).to_numpy()
    bucket = created.astype(_UNITS[unit]).astype("datetime64[us]")
    category = batch.column("error_category").fill_null("")
    frame = pd.DataFrame(
        {
            "bucket": bucket,
            "provider": batch.column("provider").to_numpy(zero_copy_only=False),
            "model": batch.column("model").to_numpy(zero_copy_only=False),
            "status": batch.column("status").to_numpy(zero_copy_only=False),
            "category": category.to_numpy(zero_copy_only=False),
        }
    )
    keys = ["bucket", "provider", "model", "status", "category"]
    grouper = frame.groupby(keys, sort=True)
    group = grouper.ngroup().to_numpy(dtype=np.int64)
    firsts = grouper.head(1).index.to_numpy()
    order = np.argsort(group[firsts], kind="stable")
    firsts = firsts[order]
    groups = firsts.size

    def column(name: str) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        arr = batch.column(name)
        valid = pc.is_valid(arr).to_numpy(zero_copy_only=False)
        values = arr.fill_null(0).cast(pa.float64()).to_numpy()
        return values, valid

    def total(values: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
        return np.bincount(group, weights=values, minlength=groups).round().astype(np.int64)

    latency, has_latency = column("latency_ms")
    ttfb, has_ttfb = column("ttfb_ms")
    cost, _ = column("cost_usd")
    score, has_score = column("score")
    tokens_in, _ = column("input_tokens")
    tokens_out, _ = column("output_tokens")
    latency_max = np.full(groups, -1, dtype=np.int64)
    np.maximum.at(latency_max, group[has_latency], latency[has_latency].astype(np.int64))
    lat_buckets, lat_counts = _histogram_strings(group, latency, has_latency, groups)
    ttfb_buckets, ttfb_counts = _histogram_strings(group, ttfb, has_ttfb, groups)
    cost_micro = total(np.round(cost * 1e6))
    score_milli = total(np.where(has_score, np.round(score * 1e3), 0))
    ts = pa.timestamp("us")
    return pa.table(
        {
            "bucket_start": pc.binary_join_element_wise(
                pa.array(frame["bucket"].to_numpy()[firsts], type=ts).cast(pa.string()), "+00", ""
            ),
            "provider": pa.array(frame["provider"].to_numpy()[firsts]),
            "model": pa.array(frame["model"].to_numpy()[firsts]),
            "status": pa.array(frame["status"].to_numpy()[firsts]),
            "error_category": pa.array(frame["category"].to_numpy()[firsts]),
            "executions": np.bincount(group, minlength=groups),
            "latency_count": np.bincount(group, weights=has_latency, minlength=groups).astype(np.int64),
            "latency_sum_ms": total(np.where(has_latency, latency, 0)),
            "latency_max_ms": pa.array(latency_max, mask=latency_max < 0),
            "ttfb_count": np.bincount(group, weights=has_ttfb, minlength=groups).astype(np.int64),
            "ttfb_sum_ms": total(np.where(has_ttfb, ttfb, 0)),
            "input_tokens": total(tokens_in),
            "output_tokens": total(tokens_out),
            "cost_usd": pc.divide(pa.array(cost_micro).cast(pa.float64()), 1e6),
            "score_count": np.bincount(group, weights=has_score, minlength=groups).astype(np.int64),
            "score_sum": pc.divide(pa.array(score_milli).cast(pa.float64()), 1e3),
            "latency_buckets": lat_buckets,
            "latency_counts": lat_counts,
            "ttfb_buckets": ttfb_buckets,
            "ttfb_counts": ttfb_counts,
        }
    )
