"""What every benchmark shares: figures with their goals, timing, the machine line, and ``bench/RESULTS.md``.

``RESULTS.md`` is made of parts, each opened by a ``<!-- size:<key> -->`` marker and written by one
benchmark command; ``write_part`` replaces one part and keeps the others, in a fixed order.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg

from core.adapters import migrate
from core.adapters.db import libpq_url
from core.config import PROJECT_ROOT

RESULTS = PROJECT_ROOT / "bench" / "RESULTS.md"
SIZES = {"1m": 1_000_000, "10m": 10_000_000}
HEADER = (
    "# Benchmark results\n\n"
    "Each section was written by the command it names and is replaced when that command runs again:\n"
    "`python -m bench.run --size 1m|10m` (seed, rollups, Overview queries and page, memory),\n"
    "`python -m bench.operate --size ...` (Errors and Latency), `python -m bench.support --size ...`\n"
    "(Executions, Users, Leaderboards; it prints its section), `python -m bench.cache`,\n"
    "`python -m bench.flags --write`, `python -m bench.demo --write` (make demo on a clean copy of the\n"
    "tree: time to a serving dashboard, idle memory). Goals are set at 10 million executions over 90 days; smaller\n"
    "sizes are shown without a verdict. Figures are what the run printed; run one benchmark at a time\n"
    "on an otherwise idle machine.\n\n"
)


@dataclass
class Figure:
    """One measured value, with its goal and whether it met it (None: no verdict at this scale)."""

    name: str
    value: float | None
    unit: str
    goal: str = ""
    met: bool | None = None
    note: str = ""


@dataclass
class Section:
    """A titled group of figures, printed as they are added."""

    title: str
    figures: list[Figure] = field(default_factory=list)

    def add(self, figure: Figure) -> Figure:
        """Keep a figure and print it with its goal and verdict."""
        self.figures.append(figure)
        shown = "n/a" if figure.value is None else f"{figure.value:,.2f} {figure.unit}"
        verdict = {True: "met", False: "MISSED", None: ""}[figure.met]
        print(f"  {figure.name:<58} {shown:>16}  {figure.goal} {verdict} {figure.note}", flush=True)
        return figure

    def table(self, *, digits: int = 2) -> list[str]:
        """Return the figures as the lines of a Markdown table."""
        lines = ["| measure | value | goal | verdict |", "| --- | ---: | --- | --- |"]
        for f in self.figures:
            value = "not measured" if f.value is None else f"{f.value:,.{digits}f} {f.unit}"
            verdict = {True: "met", False: "**missed**", None: ""}[f.met]
            lines.append(f"| {f.name} | {value} | {f.goal} | {verdict} {f.note} |")
        return lines


def database_named(url: str, name: str) -> str:
    """Return the URL of another database on the same PostgreSQL server."""
    return f"{libpq_url(url).rsplit('/', 1)[0]}/{name}"


@contextmanager
def own_database(server_url: str, name: str, *, migrated: bool = True) -> Iterator[str]:
    """Create database ``name`` on the server of ``server_url`` (migrated by default); drop it afterwards."""
    admin = database_named(server_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = database_named(server_url, name)
    try:
        if migrated:
            migrate.upgrade(url)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    """Run ``fn`` ``repeat`` times; return each run's milliseconds."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def p95_of(samples: list[float]) -> float:
    """Return the 95th percentile of samples (nearest rank on the sorted list)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def machine() -> str:
    """Describe this machine in one line: cores, CPU model, memory, system and Python."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}), {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def write_part(key: str, lines: list[str]) -> None:
    """Replace the part ``key`` of bench/RESULTS.md with ``lines``, keeping every other part."""
    parts: dict[str, str] = {}
    if RESULTS.exists():
        for chunk in RESULTS.read_text().split("<!-- size:")[1:]:
            name, _, body = chunk.partition(" -->")
            parts[name] = f"<!-- size:{name} -->{body}".rstrip() + "\n"
    parts[key] = "\n".join([f"<!-- size:{key} -->", *lines]).rstrip() + "\n"
    # Sizes first (smallest first), then the other parts by name.
    order = sorted(parts, key=lambda k: (k not in SIZES, SIZES.get(k, 0), k))
    RESULTS.write_text(HEADER + "\n".join(parts[k] for k in order))
