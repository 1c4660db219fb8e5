"""Spike detection: where an error rate leaves its baseline by more than chance explains."""

from __future__ import annotations

import numpy as np
import pandas as pd


def detect_spikes(
    totals: pd.DataFrame,
    *,
    baseline_buckets: int = 30,
    min_history: int = 5,
    min_executions: int = 20,
    factor: float = 2.0,
    floor: float = 0.02,
    sigmas: float = 3.0,
) -> pd.DataFrame:
    """Find where the error rate leaves its baseline: the first bucket of each run above it.

    The baseline of a bucket is the median rate of up to ``baseline_buckets`` buckets before it;
    a bucket spikes when its rate exceeds ``max(factor * baseline, baseline + floor)`` with at
    least ``min_executions`` executions, and by more than ``sigmas`` standard deviations of a
    rate drawn from its executions at the baseline rate (binomial): at a few dozen executions
    per minute, three errors instead of one is chance, not an incident. Columns:
    ``bucket_start``, ``rate``, ``baseline``.
    """
    ordered = totals.sort_values("bucket_start").reset_index(drop=True)
    rate = ordered["rate"].astype(float)
    executions = ordered["executions"].astype(float)
    baseline = rate.shift(1).rolling(baseline_buckets, min_periods=min_history).median()
    threshold = np.maximum(baseline * factor, baseline + floor)
    # A baseline of 0 would make any error significant: count it as one error in the bucket.
    p = np.maximum(baseline, 1.0 / executions.where(executions > 0))
    noise = np.sqrt(p * (1.0 - p) / executions.where(executions > 0))
    significant = (rate - baseline) > sigmas * noise
    above = (rate > threshold) & significant & (ordered["executions"] >= min_executions) & baseline.notna()
    starts = above & ~above.shift(1, fill_value=False)
    return pd.DataFrame(
        {
            "bucket_start": ordered.loc[starts, "bucket_start"].to_numpy(),
            "rate": rate[starts].to_numpy(),
            "baseline": baseline[starts].to_numpy(),
        }
    )
