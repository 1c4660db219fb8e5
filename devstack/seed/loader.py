"""Loads a generated platform with COPY and builds its rollups in the same pass.

Chunks of executions are generated on one thread while a writer thread COPYs the previous ones;
the executions' secondary indexes are dropped for the load and built again afterwards, partition
by partition on two connections, and the minute and hour rollups are aggregated from each chunk.
"""

from __future__ import annotations

import io
import itertools
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

from core.adapters.db import libpq_url
from core.domain.exceptions import InvalidInput
from core.executions import rollups
from devstack.seed.generator import PlatformGenerator, SeedOptions
from devstack.seed.rollup_batch import rollup_batch

CHUNK_ROWS = 250_000


class SeedRefused(InvalidInput):
    """The database already holds a platform; seeding again needs ``--reset``."""


@dataclass
class SeedReport:
    """What a seed loaded, and how long each step took."""

    users: int = 0
    prompts: int = 0
    executions: int = 0
    payloads: int = 0
    start: datetime | None = None
    end: datetime | None = None
    seconds: dict[str, float] = field(default_factory=dict)


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
    """Format UTC timestamps as timestamptz text; far faster than the CSV writer's own formatting."""
    naive = stamps.cast(pa.timestamp("us"))
    return pc.binary_join_element_wise(naive.cast(pa.string()), "+00", "")


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
    """Generate and loads a platform into the database at ``url``, then builds the rollups.

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
    """Drop the executions' secondary indexes for the bulk load and builds them again after it.

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
    """Make an index definition apply to the partitioned parent alone."""
    return definition if " ON ONLY " in definition else definition.replace(" ON ", " ON ONLY ", 1)


def _for_partition(parent_sql: str, name: str, child: str, partition: str) -> str:
    """Turn the parent's ``CREATE INDEX name ON ONLY table ...`` into one partition's index."""
    head, _, rest = parent_sql.partition(" ON ONLY ")
    _, _, tail = rest.partition(" ")
    return f'{head.replace(name, f"{chr(34)}{child}{chr(34)}", 1)} ON "{partition}" {tail}'


def _run_in_parallel(url: str, statements: list[str], *, setup: str = "") -> None:
    """Run independent statements on ``PARALLEL_BUILDS`` connections, biggest first as given."""
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
    """Build the hourly latency summaries of [start, end] in two halves on two connections."""
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
    """Split sorted times into chunks of about ``size`` rows that never split an hour."""
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
    """Generate chunks on this thread while a writer thread COPYs the previous ones."""
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
                table = rollup_batch(chunk, unit)
                item.append((f"execution_rollup_{unit}", table.column_names, _csv(table)))
            work.put(item)
            loaded += chunk.num_rows
    finally:
        work.put(None)
        thread.join()
    if failure:
        raise failure[0]
    return loaded
