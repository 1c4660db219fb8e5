"""Draws a realistic platform from a seed: users, prompts and prompt executions with incidents.

The platform it draws: users with a tier mix and heavy-tailed activity; prompts owned by users;
executions across providers and models with lognormal latencies that differ by model, a daily and
weekly traffic shape, base error rates per category, three incidents (a provider outage, a
rate-limit storm, a content-filter spike), costs from per-model prices and quality scores. The
same ``seed`` and ``end`` give the same rows.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, Field

from core.domain.models import ErrorCategory, ExecutionStatus, UserStatus
from devstack.seed.profiles import (
    CATEGORIES,
    DAILY_PEAK_HOUR,
    DAILY_SWING,
    DOMAINS,
    ERRORS,
    FIRST,
    LAST,
    MODELS,
    OBJECTS,
    TAGS,
    TIER_ACTIVITY,
    TIER_SHARE,
    TIERS,
    TOPICS,
    WEEKEND_SHARE,
    plan_incidents,
)


class SeedOptions(BaseModel):
    """What to generate; validated so that bad arguments change nothing."""

    executions: int = Field(ge=1, le=200_000_000)
    days: int = Field(ge=1, le=400)
    seed: int = Field(default=42, ge=0, le=2**32 - 1)
    end: datetime | None = None
    payload_fraction: float = Field(default=0.02, ge=0, le=1)


def _hex_ids(rng: np.random.Generator, n: int, width: int) -> pa.Array:
    """Make ``n`` random lowercase hex strings of ``width`` characters without a Python loop."""
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    raw = digits[rng.integers(0, 16, size=(n, width), dtype=np.uint8)]
    return pa.array(raw.view(f"S{width}").ravel()).cast(pa.string())


def _pick(options: tuple[str, ...] | list[str], index: npt.NDArray[np.int64], mask: npt.NDArray[np.bool_]) -> pa.Array:
    """Take ``options[index]`` where ``mask`` holds and null elsewhere, in Arrow."""
    idx = pa.array(index, mask=~mask, type=pa.int32())
    return pc.take(pa.array(list(options), type=pa.string()), idx)


def _traffic_weights(minutes: npt.NDArray[np.datetime64]) -> npt.NDArray[np.float64]:
    """Relative traffic per minute: a daily wave peaking mid-afternoon UTC and quieter weekends."""
    m = minutes.astype("datetime64[m]").astype(np.int64)
    hour = (m // 60) % 24 + (m % 60) / 60.0
    weekday = ((m // 1440) + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    daily = 1.0 + DAILY_SWING * np.cos((hour - DAILY_PEAK_HOUR) / 24.0 * 2 * math.pi)
    weekly = np.where(weekday >= 5, WEEKEND_SHARE, 1.0)
    return np.asarray(daily * weekly, dtype=np.float64)


# -- the generator -------------------------------------------------------------------------------


class PlatformGenerator:
    """Draws a platform deterministically from a seed."""

    def __init__(self, options: SeedOptions, end: datetime) -> None:
        self.options = options
        self.end = end
        self.start = end - timedelta(days=options.days)
        self.rng = np.random.default_rng(options.seed)
        n = options.executions
        self.n_users = int(min(100_000, max(50, n // 100)))
        self.n_prompts = int(min(20_000, max(20, self.n_users // 5)))
        self.incidents = plan_incidents(self.start, self.end)

    # users and prompts -------------------------------------------------------------------------

    def users(self) -> tuple[pa.Table, npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """Return the users table, each user's activity weight and tier index."""
        rng, n = self.rng, self.n_users
        tier = rng.choice(len(TIERS), size=n, p=TIER_SHARE)
        activity = rng.pareto(1.3, size=n) + 0.2
        activity *= np.asarray(TIER_ACTIVITY)[tier]
        first = rng.integers(0, len(FIRST), size=n)
        last = rng.integers(0, len(LAST), size=n)
        domain = rng.integers(0, len(DOMAINS), size=n)
        ids = np.arange(1, n + 1)
        emails = [
            f"{FIRST[f]}.{LAST[la]}{i}@{DOMAINS[d]}" for i, f, la, d in zip(ids, first, last, domain, strict=True)
        ]
        names = [f"{FIRST[f].title()} {LAST[la].title()}" for f, la in zip(first, last, strict=True)]
        created_offset = rng.uniform(0, 365 * 86400, size=n)
        created = np.datetime64(self.start.replace(tzinfo=None), "us") - (created_offset * 1e6).astype(
            "timedelta64[us]"
        )
        status = np.where(rng.random(n) < 0.01, UserStatus.SUSPENDED.value, UserStatus.ACTIVE.value)
        table = pa.table(
            {
                "id": ids,
                "email": emails,
                "display_name": names,
                "tier": pa.array(np.asarray(TIERS)[tier]),
                "status": pa.array(status),
                "created_at": pa.array(created).cast(pa.timestamp("us", tz="UTC")),
            }
        )
        return table, activity / activity.sum(), tier

    def prompts(self) -> tuple[pa.Table, npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """Return the prompts table, each prompt's owner and its quality offset."""
        rng, n = self.rng, self.n_prompts
        owner = rng.integers(1, self.n_users + 1, size=n)
        topic = rng.integers(0, len(TOPICS), size=n)
        obj = rng.integers(0, len(OBJECTS), size=n)
        version = rng.integers(1, 6, size=n)
        tag_a = rng.integers(0, len(TAGS), size=n)
        tag_b = rng.integers(0, len(TAGS), size=n)
        titles = [f"{TOPICS[t].title()} a {OBJECTS[o]}" for t, o in zip(topic, obj, strict=True)]
        tags = ["{" + (TAGS[a] if a == b else f"{TAGS[a]},{TAGS[b]}") + "}" for a, b in zip(tag_a, tag_b, strict=True)]
        created = np.datetime64(self.start.replace(tzinfo=None), "us") - (
            rng.uniform(0, 180 * 86400, size=n) * 1e6
        ).astype("timedelta64[us]")
        updated = created + (rng.uniform(0, 60 * 86400, size=n) * 1e6).astype("timedelta64[us]")
        table = pa.table(
            {
                "id": np.arange(1, n + 1),
                "owner_id": owner,
                "title": titles,
                "tags": tags,
                "version": version,
                "created_at": pa.array(created).cast(pa.timestamp("us", tz="UTC")),
                "updated_at": pa.array(updated).cast(pa.timestamp("us", tz="UTC")),
            }
        )
        quality = rng.normal(0.0, 0.08, size=n)
        return table, owner, quality

    # executions --------------------------------------------------------------------------------

    def execution_times(self) -> npt.NDArray[np.datetime64]:
        """Draws every execution's start, sorted, following the traffic shape."""
        start = np.datetime64(self.start.replace(tzinfo=None), "m")
        minutes = np.arange(start, start + np.timedelta64(self.options.days * 1440, "m"))
        weights = _traffic_weights(minutes)
        counts = self.rng.multinomial(self.options.executions, weights / weights.sum())
        base = np.repeat(minutes.astype("datetime64[us]"), counts)
        jitter = (self.rng.random(base.size) * 60e6).astype("timedelta64[us]")
        times = base + jitter
        times.sort()
        return np.asarray(times, dtype="datetime64[us]")

    def executions(
        self,
        times: npt.NDArray[np.datetime64],
        first_id: int,
        user_weights: npt.NDArray[np.float64],
        user_tier: npt.NDArray[np.int64],
        prompt_owner: npt.NDArray[np.int64],
        prompt_quality: npt.NDArray[np.float64],
    ) -> pa.Table:
        """Draws one chunk of executions at the given start times."""
        rng, n = self.rng, times.size
        model_share = np.asarray([m.share for m in MODELS])
        model = rng.choice(len(MODELS), size=n, p=model_share / model_share.sum())
        provider_of = np.asarray([m.provider for m in MODELS])
        provider = provider_of[model]

        # Most executions run a prompt of the user's own; the rest a shared one.
        user = rng.choice(self.n_users, size=n, p=user_weights) + 1
        prompt = rng.integers(1, self.n_prompts + 1, size=n)
        tier = user_tier[user - 1]

        # Error category: base rates, free tier quota, and the incidents.
        base = np.asarray([ERRORS[ErrorCategory(c)][1] for c in CATEGORIES])
        probs = np.broadcast_to(base, (n, len(CATEGORIES))).copy()
        probs[:, CATEGORIES.index(ErrorCategory.QUOTA_EXCEEDED)] *= np.where(tier == 0, 4.0, 0.5)
        latency_factor = np.ones(n)
        t_us = times.astype("datetime64[us]")
        for inc in self.incidents:
            lo = np.datetime64(inc.start.replace(tzinfo=None), "us")
            hi = lo + np.timedelta64(int(inc.duration.total_seconds() * 1e6), "us")
            hit = (t_us >= lo) & (t_us < hi) & (provider == inc.provider)
            probs[hit, CATEGORIES.index(inc.category)] += inc.rate
            latency_factor[hit] *= inc.latency_factor
        total_err = probs.sum(axis=1)
        u = rng.random(n)
        failed = u < total_err
        cum = np.cumsum(probs, axis=1)
        cat_idx = np.argmax(cum > u[:, None], axis=1)
        cat_idx = np.where(failed, cat_idx, -1)
        cancelled = (~failed) & (rng.random(n) < 0.003)

        status = np.full(n, ExecutionStatus.SUCCEEDED.value, dtype=object)
        status[cancelled] = ExecutionStatus.CANCELLED.value
        cat_status = np.array([ERRORS[ErrorCategory(c)][0].value for c in CATEGORIES], dtype=object)
        status[failed] = cat_status[cat_idx[failed]]
        # The newest few executions are still queued or running.
        recent = t_us >= np.datetime64(self.end.replace(tzinfo=None), "us") - np.timedelta64(90, "s")
        in_flight = recent & ~failed & (rng.random(n) < 0.5)
        status[in_flight & (rng.random(n) < 0.5)] = ExecutionStatus.QUEUED.value
        status[in_flight & (status != ExecutionStatus.QUEUED)] = ExecutionStatus.RUNNING.value
        done = ~in_flight

        median = np.asarray([m.median_ms for m in MODELS])[model]
        sigma = np.asarray([m.sigma for m in MODELS])[model]
        input_tokens = np.clip(rng.lognormal(math.log(600), 0.9, size=n), 5, 120_000).astype(np.int64)
        output_tokens = np.clip(rng.lognormal(math.log(320), 0.7, size=n), 1, 8_000).astype(np.int64)
        token_factor = (output_tokens / 320.0) ** 0.35
        latency = rng.lognormal(np.log(median), sigma) * token_factor * latency_factor
        succeeded = status == ExecutionStatus.SUCCEEDED
        timed_out = status == ExecutionStatus.TIMED_OUT
        latency = np.where(failed & ~timed_out, latency * rng.uniform(0.05, 0.4, size=n), latency)
        latency = np.where(timed_out, 60_000 + rng.uniform(0, 500, size=n), latency)
        latency = np.where(cancelled, latency * rng.uniform(0.1, 0.9, size=n), latency)
        latency = np.clip(latency, 20, 600_000).astype(np.int64)
        ttfb = (latency * rng.uniform(0.12, 0.38, size=n)).astype(np.int64)
        has_ttfb = done & (succeeded | cancelled)
        output_tokens = np.where(succeeded, output_tokens, np.where(cancelled, output_tokens // 3, 0))

        price_in = np.asarray([m.price_in for m in MODELS])[model]
        price_out = np.asarray([m.price_out for m in MODELS])[model]
        cost = np.round(input_tokens / 1000 * price_in + output_tokens / 1000 * price_out, 6)
        cost = np.where(status == ExecutionStatus.QUEUED, 0.0, cost)

        quality = np.asarray([m.quality for m in MODELS])[model] + prompt_quality[prompt - 1]
        score = np.clip(rng.normal(quality, 0.1), 0, 1).round(3)
        has_score = succeeded & (rng.random(n) < 0.7)

        codes_idx = rng.integers(0, 3, size=n)
        msg_idx = rng.integers(0, 3, size=n)
        code_options: list[str] = []
        msg_options: list[str] = []
        code_index = np.zeros(n, dtype=np.int64)
        msg_index = np.zeros(n, dtype=np.int64)
        for i, cat in enumerate(CATEGORIES):
            rows = cat_idx == i
            codes, messages = ERRORS[ErrorCategory(cat)][2], ERRORS[ErrorCategory(cat)][3]
            code_index[rows] = len(code_options) + codes_idx[rows] % len(codes)
            msg_index[rows] = len(msg_options) + msg_idx[rows] % len(messages)
            code_options.extend(codes)
            msg_options.extend(messages)

        finished = t_us + (latency * 1000).astype("timedelta64[us]")
        ts = pa.timestamp("us", tz="UTC")
        return pa.table(
            {
                "id": np.arange(first_id, first_id + n),
                "created_at": pa.array(t_us).cast(ts),
                "user_id": user,
                "prompt_id": prompt,
                "provider": pa.array(provider.astype(str)),
                "model": pc.take(pa.array([m.model for m in MODELS]), pa.array(model)),
                "status": pa.array(status.astype(str)),
                "error_category": _pick(CATEGORIES, cat_idx, failed),
                "error_code": _pick(code_options, code_index, failed),
                "error_message": _pick(msg_options, msg_index, failed),
                "latency_ms": pa.array(latency, mask=~done, type=pa.int32()),
                "ttfb_ms": pa.array(ttfb, mask=~has_ttfb, type=pa.int32()),
                "input_tokens": pa.array(input_tokens, type=pa.int32()),
                "output_tokens": pa.array(output_tokens, type=pa.int32()),
                "cost_usd": pa.array(cost),
                "score": pa.array(score, mask=~has_score),
                "request_id": pc.binary_join_element_wise("req_", _hex_ids(rng, n, 20), ""),
                "finished_at": pa.array(finished, mask=~done).cast(ts),
            }
        )

    def payloads(self, chunk: pa.Table) -> pa.Table | None:
        """Draws input and output text for a sample of a chunk's executions."""
        n = chunk.num_rows
        pick = np.flatnonzero(self.rng.random(n) < self.options.payload_fraction)
        if pick.size == 0:
            return None
        ids = chunk.column("id").to_numpy()[pick]
        created = chunk.column("created_at").take(pa.array(pick))
        status = chunk.column("status").to_numpy(zero_copy_only=False)[pick]
        topic = self.rng.integers(0, len(TOPICS), size=pick.size)
        obj = self.rng.integers(0, len(OBJECTS), size=pick.size)
        inputs = [
            f"Please {TOPICS[t]} the following {OBJECTS[o]} for customer #{i % 9973}. "
            f"Contact: jane.doe{i % 97}@example.com, key sk-live-{i:012d}."
            for t, o, i in zip(topic, obj, ids, strict=True)
        ]
        outputs = [
            f"Here is the {TOPICS[t]}d {OBJECTS[o]}: ..." if s == ExecutionStatus.SUCCEEDED else None
            for t, o, s in zip(topic, obj, status, strict=True)
        ]
        return pa.table({"execution_id": ids, "created_at": created, "input_text": inputs, "output_text": outputs})
