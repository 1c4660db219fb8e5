"""Realistic seed data: users, prompts and prompt executions with incidents, loaded with COPY.

The platform it draws: users with a tier mix and heavy-tailed activity; prompts owned by users;
executions across providers and models with lognormal latencies that differ by model, a daily and
weekly traffic shape, base error rates per category, three incidents (a provider outage, a
rate-limit storm, a content-filter spike), costs from per-model prices and quality scores. The
same ``seed`` and ``end`` give the same rows.
"""

from __future__ import annotations

import io
import itertools
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from pydantic import BaseModel, Field

from core import rollups
from core.db import libpq_url
from core.models import InvalidInput

CHUNK_ROWS = 250_000


class SeedRefused(InvalidInput):
    """The database already holds a platform; seeding again needs ``--reset``."""


class SeedOptions(BaseModel):
    """What to generate; validated so that bad arguments change nothing."""

    executions: int = Field(ge=1, le=200_000_000)
    days: int = Field(ge=1, le=400)
    seed: int = Field(default=42, ge=0, le=2**32 - 1)
    end: datetime | None = None
    payload_fraction: float = Field(default=0.02, ge=0, le=1)


@dataclass(frozen=True)
class ModelProfile:
    provider: str
    model: str
    share: float
    median_ms: float
    sigma: float
    price_in: float  # USD per 1k input tokens
    price_out: float  # USD per 1k output tokens
    quality: float  # mean score of a succeeded execution


MODELS: tuple[ModelProfile, ...] = (
    ModelProfile("openai", "gpt-4o", 0.20, 1900, 0.45, 0.0025, 0.010, 0.80),
    ModelProfile("openai", "gpt-4o-mini", 0.18, 750, 0.40, 0.00015, 0.0006, 0.70),
    ModelProfile("openai", "o3-mini", 0.06, 5200, 0.55, 0.0011, 0.0044, 0.84),
    ModelProfile("anthropic", "claude-sonnet-4", 0.16, 2300, 0.45, 0.003, 0.015, 0.83),
    ModelProfile("anthropic", "claude-haiku-3.5", 0.10, 850, 0.40, 0.0008, 0.004, 0.71),
    ModelProfile("google", "gemini-2.0-flash", 0.12, 620, 0.38, 0.0001, 0.0004, 0.68),
    ModelProfile("google", "gemini-1.5-pro", 0.07, 2600, 0.50, 0.00125, 0.005, 0.78),
    ModelProfile("mistral", "mistral-large", 0.06, 1600, 0.45, 0.002, 0.006, 0.74),
    ModelProfile("mistral", "mistral-small", 0.05, 520, 0.38, 0.0002, 0.0006, 0.64),
)

# Error categories: (status, base rate per execution, HTTP-ish codes, messages).
ERRORS: dict[str, tuple[str, float, tuple[str, ...], tuple[str, ...]]] = {
    "provider_timeout": (
        "timed_out",
        0.004,
        ("timeout",),
        ("Provider did not answer within 60 s", "Read timed out after 60000 ms"),
    ),
    "provider_rate_limited": (
        "failed",
        0.006,
        ("429", "rate_limit_exceeded"),
        ("Rate limit reached for requests per minute", "Too many requests, please slow down"),
    ),
    "provider_unavailable": (
        "failed",
        0.003,
        ("503", "502", "500"),
        (
            "Service unavailable",
            "Bad gateway from upstream",
            "The server had an error processing your request",
        ),
    ),
    "provider_auth": ("failed", 0.0002, ("401",), ("Invalid API key provided",)),
    "invalid_request": (
        "failed",
        0.004,
        ("400", "invalid_request_error"),
        (
            "Invalid value for 'temperature'",
            "Unsupported parameter: 'logprobs'",
            "Malformed JSON in tool call",
        ),
    ),
    "content_filtered": (
        "failed",
        0.003,
        ("content_filter", "safety"),
        ("Output blocked by content filter", "Response flagged by safety system"),
    ),
    "context_length_exceeded": (
        "failed",
        0.002,
        ("context_length_exceeded",),
        ("This model's maximum context length is 128000 tokens", "Prompt is too long"),
    ),
    "quota_exceeded": (
        "failed",
        0.002,
        ("tier_quota",),
        ("Monthly execution quota of your tier reached", "Daily token budget exhausted"),
    ),
    "internal": ("failed", 0.001, ("internal",), ("Unexpected error while streaming the response",)),
}
CATEGORIES = list(ERRORS)

TIERS = ("free", "pro", "team", "enterprise")
TIER_SHARE = (0.70, 0.20, 0.08, 0.02)
TIER_ACTIVITY = (1.0, 3.0, 6.0, 12.0)

FIRST = (
    "ada",
    "grace",
    "alan",
    "linus",
    "ken",
    "barbara",
    "edsger",
    "margaret",
    "dennis",
    "frances",
    "john",
    "radia",
    "tim",
    "sophie",
    "yuki",
    "amara",
    "mateo",
    "lena",
    "omar",
    "priya",
)
LAST = (
    "lovelace",
    "hopper",
    "turing",
    "torvalds",
    "thompson",
    "liskov",
    "dijkstra",
    "hamilton",
    "ritchie",
    "allen",
    "backus",
    "perlman",
    "berners",
    "wilson",
    "tanaka",
    "okafor",
    "silva",
    "novak",
    "haddad",
    "iyer",
)
DOMAINS = ("example.com", "acme.io", "mail.test", "corp.example", "studio.dev")
TOPICS = ("summarize", "translate", "classify", "extract", "draft", "review", "explain", "rewrite")
OBJECTS = (
    "support ticket",
    "contract clause",
    "release notes",
    "product review",
    "sales email",
    "SQL query",
    "meeting transcript",
    "bug report",
    "job posting",
    "research abstract",
)
TAGS = ("support", "legal", "marketing", "engineering", "sales", "hr", "research", "ops")


@dataclass(frozen=True)
class Incident:
    name: str
    provider: str
    category: str
    start: datetime
    duration: timedelta
    rate: float  # extra probability of the category for that provider during the incident
    latency_factor: float = 1.0


def plan_incidents(start: datetime, end: datetime) -> list[Incident]:
    """Places the three incidents at fixed points of the seeded range."""
    span = end - start

    def at(fraction: float) -> datetime:
        return (start + span * fraction).replace(second=0, microsecond=0)

    return [
        Incident("provider outage", "openai", "provider_unavailable", at(0.72), timedelta(minutes=45), 0.55, 0.3),
        Incident("rate-limit storm", "anthropic", "provider_rate_limited", at(0.41), timedelta(hours=2), 0.22),
        Incident("content-filter spike", "google", "content_filtered", at(0.18), timedelta(hours=3), 0.12),
    ]


@dataclass
class SeedReport:
    users: int = 0
    prompts: int = 0
    executions: int = 0
    payloads: int = 0
    start: datetime | None = None
    end: datetime | None = None
    seconds: dict[str, float] = field(default_factory=dict)


# -- helpers -------------------------------------------------------------------------------------


def _hex_ids(rng: np.random.Generator, n: int, width: int) -> pa.Array:
    """Makes ``n`` random lowercase hex strings of ``width`` characters without a Python loop."""
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    raw = digits[rng.integers(0, 16, size=(n, width), dtype=np.uint8)]
    return pa.array(raw.view(f"S{width}").ravel()).cast(pa.string())


def _pick(options: tuple[str, ...] | list[str], index: npt.NDArray[np.int64], mask: npt.NDArray[np.bool_]) -> pa.Array:
    """Takes ``options[index]`` where ``mask`` holds and null elsewhere, in Arrow."""
    idx = pa.array(index, mask=~mask, type=pa.int32())
    return pc.take(pa.array(list(options), type=pa.string()), idx)


def _copy(conn: psycopg.Connection, table: str, columns: list[str], data: bytes) -> None:
    with (
        conn.cursor() as cur,
        cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT csv)") as copy,
    ):
        view = memoryview(data)
        for offset in range(0, len(view), 1 << 20):
            copy.write(view[offset : offset + (1 << 20)])


def _csv(table: pa.Table) -> bytes:
    for i, column in enumerate(table.columns):
        if pa.types.is_timestamp(column.type):
            table = table.set_column(i, table.field(i).name, _utc_text(column))
    sink = io.BytesIO()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False))
    return sink.getvalue()


def _utc_text(stamps: pa.ChunkedArray) -> pa.ChunkedArray:
    """Formats UTC timestamps as timestamptz text; far faster than the CSV writer's own formatting."""
    naive = stamps.cast(pa.timestamp("us"))
    return pc.binary_join_element_wise(naive.cast(pa.string()), "+00", "")


def _traffic_weights(minutes: npt.NDArray[np.datetime64]) -> npt.NDArray[np.float64]:
    """Relative traffic per minute: a daily wave peaking mid-afternoon UTC and quieter weekends."""
    m = minutes.astype("datetime64[m]").astype(np.int64)
    hour = (m // 60) % 24 + (m % 60) / 60.0
    weekday = ((m // 1440) + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    daily = 1.0 + 0.65 * np.cos((hour - 15.0) / 24.0 * 2 * math.pi)
    weekly = np.where(weekday >= 5, 0.6, 1.0)
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
        """Returns the users table, each user's activity weight and tier index."""
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
        status = np.where(rng.random(n) < 0.01, "suspended", "active")
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
        """Returns the prompts table, each prompt's owner and its quality offset."""
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
        base = np.asarray([ERRORS[c][1] for c in CATEGORIES])
        probs = np.broadcast_to(base, (n, len(CATEGORIES))).copy()
        probs[:, CATEGORIES.index("quota_exceeded")] *= np.where(tier == 0, 4.0, 0.5)
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

        status = np.full(n, "succeeded", dtype=object)
        status[cancelled] = "cancelled"
        cat_status = np.asarray([ERRORS[c][0] for c in CATEGORIES], dtype=object)
        status[failed] = cat_status[cat_idx[failed]]
        # The newest few executions are still queued or running.
        recent = t_us >= np.datetime64(self.end.replace(tzinfo=None), "us") - np.timedelta64(90, "s")
        in_flight = recent & ~failed & (rng.random(n) < 0.5)
        status[in_flight & (rng.random(n) < 0.5)] = "queued"
        status[in_flight & (status != "queued")] = "running"
        done = ~in_flight

        median = np.asarray([m.median_ms for m in MODELS])[model]
        sigma = np.asarray([m.sigma for m in MODELS])[model]
        input_tokens = np.clip(rng.lognormal(math.log(600), 0.9, size=n), 5, 120_000).astype(np.int64)
        output_tokens = np.clip(rng.lognormal(math.log(320), 0.7, size=n), 1, 8_000).astype(np.int64)
        token_factor = (output_tokens / 320.0) ** 0.35
        latency = rng.lognormal(np.log(median), sigma) * token_factor * latency_factor
        succeeded = status == "succeeded"
        timed_out = status == "timed_out"
        latency = np.where(failed & ~timed_out, latency * rng.uniform(0.05, 0.4, size=n), latency)
        latency = np.where(timed_out, 60_000 + rng.uniform(0, 500, size=n), latency)
        latency = np.where(cancelled, latency * rng.uniform(0.1, 0.9, size=n), latency)
        latency = np.clip(latency, 20, 600_000).astype(np.int64)
        ttfb = (latency * rng.uniform(0.12, 0.38, size=n)).astype(np.int64)
        has_ttfb = done & (succeeded | cancelled)
        output_tokens = np.where(succeeded, output_tokens, np.where(cancelled, output_tokens // 3, 0))
        input_tokens = np.where(status == "queued", input_tokens, input_tokens)

        price_in = np.asarray([m.price_in for m in MODELS])[model]
        price_out = np.asarray([m.price_out for m in MODELS])[model]
        cost = np.round(input_tokens / 1000 * price_in + output_tokens / 1000 * price_out, 6)
        cost = np.where(status == "queued", 0.0, cost)

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
            codes, messages = ERRORS[cat][2], ERRORS[cat][3]
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
            f"Here is the {TOPICS[t]}d {OBJECTS[o]}: ..." if s == "succeeded" else None
            for t, o, s in zip(topic, obj, status, strict=True)
        ]
        return pa.table({"execution_id": ids, "created_at": created, "input_text": inputs, "output_text": outputs})


# -- loading -------------------------------------------------------------------------------------

EXECUTION_COLUMNS = [
    "id",
    "created_at",
    "user_id",
    "prompt_id",
    "provider",
    "model",
    "status",
    "error_category",
    "error_code",
    "error_message",
    "latency_ms",
    "ttfb_ms",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "score",
    "request_id",
    "finished_at",
]
PAYLOAD_COLUMNS = ["execution_id", "created_at", "input_text", "output_text"]
SEEDED_TABLES = (
    "prompt_executions",
    "execution_payloads",
    "users",
    "prompts",
    "execution_rollup_minute",
    "execution_rollup_hour",
    "execution_latency_hour",
    "rollup_watermarks",
    "leaderboard_snapshots",
)


def is_seeded(url: str) -> bool:
    """Tells whether the database already holds users or executions."""
    with psycopg.connect(libpq_url(url)) as conn:
        row = conn.execute("SELECT EXISTS (SELECT 1 FROM users) OR EXISTS (SELECT 1 FROM prompt_executions)").fetchone()
    return bool(row and row[0])


def _months_between(start: datetime, end: datetime) -> int:
    return (end.year - start.year) * 12 + end.month - start.month + 1


def seed(
    url: str,
    options: SeedOptions,
    *,
    reset: bool = False,
    progress: bool = True,
    on_progress: Callable[[int], None] | None = None,
) -> SeedReport:
    """Generates and loads a platform into the database at ``url``, then builds the rollups.

    Refuses with ``SeedRefused`` when the database is already seeded, unless ``reset``.
    """
    if not reset and is_seeded(url):
        raise SeedRefused("The database is already seeded; pass --reset to replace its data.")
    end = (options.end or datetime.now(UTC)).astimezone(UTC).replace(second=0, microsecond=0)
    gen = PlatformGenerator(options, end)
    report = SeedReport(start=gen.start, end=end)
    clock = time.perf_counter()

    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        if reset:
            conn.execute(f"TRUNCATE {', '.join(SEEDED_TABLES)}")
        conn.execute(
            "SELECT krowoc_ensure_execution_partitions(%s::date, %s)",
            (gen.start.date(), _months_between(gen.start, end) + 1),
        )
        users, weights, tiers = gen.users()
        prompts, owners, quality = gen.prompts()
        _copy(conn, "users", users.column_names, _csv(users))
        _copy(conn, "prompts", prompts.column_names, _csv(prompts))
        report.users, report.prompts = users.num_rows, prompts.num_rows
        report.seconds["users_prompts"] = time.perf_counter() - clock

        clock = time.perf_counter()
        times = gen.execution_times()
        first_id = int(conn.execute("SELECT nextval('prompt_executions_id_seq')").fetchone()[0])  # type: ignore[index]
        bar = _progress_bar(options.executions, progress)
        with _secondary_indexes_deferred(conn, url, report):
            loaded = _load_executions(
                url, gen, times, first_id, weights, tiers, owners, quality, bar, on_progress, report
            )
            if bar is not None:
                bar.close()
            report.seconds["load"] = time.perf_counter() - clock
        conn.execute("SELECT setval('prompt_executions_id_seq', %s)", (first_id + loaded,))
        report.executions = loaded

        clock = time.perf_counter()
        conn.execute("ANALYZE users, prompts, prompt_executions, execution_payloads")
        report.seconds["analyze"] = time.perf_counter() - clock

        clock = time.perf_counter()
        _build_latency_summaries(url, gen.start, end)
        rollups.set_watermark(conn)
        report.seconds["latency_summaries"] = time.perf_counter() - clock
        conn.execute("ANALYZE execution_rollup_minute, execution_rollup_hour, execution_latency_hour")
    return report


@contextmanager
def _secondary_indexes_deferred(conn: psycopg.Connection, url: str, report: SeedReport) -> Iterator[None]:
    """Drops the executions' secondary indexes for the bulk load and builds them again after it.

    Each index is made again on the parent alone, then built partition by partition on
    ``PARALLEL_BUILDS`` connections at once and attached, so both cores build.
    """
    rows = conn.execute(
        """
        SELECT i.indexname, i.indexdef FROM pg_indexes i
        WHERE i.schemaname = current_schema() AND i.tablename = 'prompt_executions'
          AND i.indexname NOT IN (SELECT conname FROM pg_constraint WHERE contype IN ('p', 'u'))
        """
    ).fetchall()
    for name, _ in rows:
        conn.execute(f'DROP INDEX "{name}"')
    try:
        yield
    finally:
        clock = time.perf_counter()
        partitions = [
            r[0]
            for r in conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'prompt_executions'::regclass ORDER BY 1"
            )
        ]
        builds: list[tuple[str, str, str]] = []
        for name, definition in rows:
            parent_sql = _on_only(definition)
            conn.execute(parent_sql)
            for partition in partitions:
                child = f"{partition}_{name.removeprefix('ix_prompt_executions_')}"[:63]
                builds.append((name, child, _for_partition(parent_sql, name, child, partition)))
        _run_in_parallel(url, [sql for _, _, sql in builds], setup="SET maintenance_work_mem = '512MB'")
        for name, child, _ in builds:
            conn.execute(f'ALTER INDEX "{name}" ATTACH PARTITION "{child}"')
        report.seconds["indexes"] = time.perf_counter() - clock


PARALLEL_BUILDS = 2


def _on_only(definition: str) -> str:
    """Makes an index definition apply to the partitioned parent alone."""
    return definition if " ON ONLY " in definition else definition.replace(" ON ", " ON ONLY ", 1)


def _for_partition(parent_sql: str, name: str, child: str, partition: str) -> str:
    """Turns the parent's ``CREATE INDEX name ON ONLY table ...`` into one partition's index."""
    head, _, rest = parent_sql.partition(" ON ONLY ")
    _, _, tail = rest.partition(" ")
    return f'{head.replace(name, f"{chr(34)}{child}{chr(34)}", 1)} ON "{partition}" {tail}'


def _run_in_parallel(url: str, statements: list[str], *, setup: str = "") -> None:
    """Runs independent statements on ``PARALLEL_BUILDS`` connections, biggest first as given."""
    pending: queue.Queue[str] = queue.Queue()
    for statement in statements:
        pending.put(statement)
    failures: list[BaseException] = []

    def worker() -> None:
        try:
            with psycopg.connect(libpq_url(url), autocommit=True) as conn:
                if setup:
                    conn.execute(setup)
                while not failures:
                    try:
                        statement = pending.get_nowait()
                    except queue.Empty:
                        return
                    conn.execute(statement)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(PARALLEL_BUILDS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def _build_latency_summaries(url: str, start: datetime, end: datetime) -> None:
    """Builds the hourly latency summaries of [start, end] in two halves on two connections."""
    lo = start.replace(minute=0, second=0, microsecond=0)
    hi = end.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    middle = lo + timedelta(hours=((hi - lo) // timedelta(hours=1)) // 2)
    failures: list[BaseException] = []

    def build(a: datetime, b: datetime) -> None:
        try:
            with psycopg.connect(libpq_url(url)) as conn, conn.transaction():
                conn.execute("SET LOCAL work_mem = '256MB'")
                rollups.rebuild_latency_hour(conn, a, b)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=build, args=span, daemon=True) for span in ((lo, middle), (middle, hi))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def hour_aligned_chunks(times: npt.NDArray[np.datetime64], size: int) -> list[tuple[int, int]]:
    """Splits sorted times into chunks of about ``size`` rows that never split an hour."""
    hours = times.astype("datetime64[h]")
    bounds = [0]
    while bounds[-1] < times.size:
        target = bounds[-1] + size
        if target >= times.size:
            bounds.append(times.size)
            break
        cut = int(np.searchsorted(hours, hours[target], side="left"))
        if cut <= bounds[-1]:
            cut = int(np.searchsorted(hours, hours[target], side="right"))
        bounds.append(cut)
    return list(itertools.pairwise(bounds))


def _progress_bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="rows", unit_scale=True, desc="executions", smoothing=0.1)


def _load_executions(
    url: str,
    gen: PlatformGenerator,
    times: npt.NDArray[np.datetime64],
    first_id: int,
    weights: npt.NDArray[np.float64],
    tiers: npt.NDArray[np.int64],
    owners: npt.NDArray[np.int64],
    quality: npt.NDArray[np.float64],
    bar: Any,
    on_progress: Callable[[int], None] | None,
    report: SeedReport,
) -> int:
    """Generates chunks on this thread while a writer thread COPYs the previous ones."""
    work: queue.Queue[list[tuple[str, list[str], bytes]] | None] = queue.Queue(maxsize=2)
    failure: list[BaseException] = []

    def writer() -> None:
        try:
            with psycopg.connect(libpq_url(url), autocommit=True) as conn:
                conn.execute("SET synchronous_commit = off")
                conn.execute("SET TimeZone = 'UTC'")
                while (item := work.get()) is not None:
                    with conn.transaction():
                        for table, columns, data in item:
                            _copy(conn, table, columns, data)
                    count = item[0][2].count(b"\n")
                    if bar is not None:
                        bar.update(count)
                    if on_progress is not None:
                        on_progress(count)
        except BaseException as exc:  # handed to the generating thread
            failure.append(exc)
            while work.get() is not None:
                pass

    thread = threading.Thread(target=writer, name="seed-copy", daemon=True)
    thread.start()
    loaded = 0
    try:
        for lo, hi in hour_aligned_chunks(times, CHUNK_ROWS):
            if failure:
                break
            chunk = gen.executions(times[lo:hi], first_id + lo, weights, tiers, owners, quality)
            item = [("prompt_executions", EXECUTION_COLUMNS, _csv(chunk))]
            payloads = gen.payloads(chunk)
            if payloads is not None:
                report.payloads += payloads.num_rows
                item.append(("execution_payloads", PAYLOAD_COLUMNS, _csv(payloads)))
            for unit in ("minute", "hour"):
                table = rollups.rollup_batch(chunk, unit)
                item.append((f"execution_rollup_{unit}", table.column_names, _csv(table)))
            work.put(item)
            loaded += chunk.num_rows
    finally:
        work.put(None)
        thread.join()
    if failure:
        raise failure[0]
    return loaded
