"""Servers of a test's own to freeze (SIGSTOP) and kill (SIGKILL), and the fault matrix they fill in.

``private_servers`` starts a PostgreSQL and a Valkey of the test module's own (the embedded stack
under a temporary folder, on free loopback ports), so stopping them touches no other test. The
matrix's cells are written into ``docs/reliability.md`` as parts (``<!-- part:<name> -->``), each
replaced by the test module that measured it, when every cell of its part ran.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg

from core.adapters import migrate
from core.adapters.db import libpq_url
from core.config import Settings
from devstack.stack import EmbeddedStack
from tests.support.network import free_port
from tests.support.settings import PROJECT_ROOT

RELIABILITY = PROJECT_ROOT / "docs" / "reliability.md"
HEADER = """# Reliability: what happens when a server freezes or dies

Written by the fault tests (`tests/faults/`), each part by the test module that measured it, on
servers of their own: a PostgreSQL and a Valkey started for the test, frozen with SIGSTOP (a hung
disk, a network partition) or killed with SIGKILL. Unleash is the run's own, frozen, or replaced
by a closed port. Timings are what the run measured, on the machine that ran it; the settings are
the tests' (`KROWOC_STATEMENT_TIMEOUT_MS=1000`, `KROWOC_QUERY_GRACE_SECONDS=1`,
`KROWOC_WRITE_TIMEOUT_SECONDS=3`, `KROWOC_POOL_TIMEOUT_SECONDS=2`, `KROWOC_CONNECT_TIMEOUT_SECONDS=2`,
Redis socket timeout 0.5 s).

The rules the admin actions' cells check: nothing changes without an audit row; no `success`
without its change; a change whose outcome could not be recorded ends as `unknown`.

"""


@dataclass
class PrivateServers:
    """A PostgreSQL and a Valkey of one test module's own, to freeze and kill."""

    stack: EmbeddedStack
    database_url: str
    redis_url: str

    def pids(self, name: str) -> list[int]:
        """Return the pids of a server (``postgres``: the postmaster and every backend)."""
        status = {component.name: component for component in self.stack.status()}[name]
        if status.pid is None:
            return []
        root = psutil.Process(status.pid)
        return [root.pid, *(child.pid for child in root.children(recursive=True))]

    def freeze(self, name: str) -> list[int]:
        """Stop every process of a server (SIGSTOP) until ``thaw``; return their pids."""
        pids = self.pids(name)
        _signal(pids, signal.SIGSTOP)
        return pids

    @staticmethod
    def stop(pids: list[int]) -> list[int]:
        """Stop processes of another server (SIGSTOP) until ``thaw``; return their pids."""
        _signal(pids, signal.SIGSTOP)
        return pids

    @staticmethod
    def thaw(pids: list[int]) -> None:
        """Let stopped processes go on (SIGCONT)."""
        _signal(pids, signal.SIGCONT)

    def kill(self, name: str) -> None:
        """Kill every process of a server (SIGKILL) and wait until they are gone."""
        pids = self.pids(name)
        _signal(pids, signal.SIGKILL)
        psutil.wait_procs([psutil.Process(pid) for pid in pids if psutil.pid_exists(pid)], timeout=10)

    def restart(self) -> None:
        """Start whatever was killed again (PostgreSQL recovers from its WAL)."""
        self.stack.up()


@contextmanager
def private_servers(root: Path) -> Iterator[PrivateServers]:
    """Start a PostgreSQL and a Valkey under ``root`` on free ports, migrated; stop them at the end."""
    settings = Settings(
        database_url=None,
        redis_url=None,
        state_dir=root / "state",
        embedded_postgres_port=free_port(),
        embedded_redis_port=free_port(),
        node_packages_dir=root / "node",
    )
    stack = EmbeddedStack(settings)
    urls = stack.up()
    try:
        migrate.upgrade(urls.database_url)
        yield PrivateServers(stack, urls.database_url, urls.redis_url)
    finally:
        for component in stack.status():
            if component.pid is not None:
                root_process = psutil.Process(component.pid)
                _signal([root_process.pid, *(c.pid for c in root_process.children(recursive=True))], signal.SIGCONT)
        stack.down()


def _signal(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


@dataclass
class Attempt:
    """What an attempt under a fault left: the error its caller saw and how long it took."""

    error: str = ""
    seconds: float = 0.0


def attempt(action: Callable[[], object]) -> Attempt:
    """Run an action that a fault may end; return the error it raised (if any) and how long it took."""
    watch = Stopwatch()
    try:
        action()
    except Exception as exc:  # every fault may end the attempt; what counts is what is left behind
        return Attempt(exc.__class__.__name__, watch.seconds)
    return Attempt("", watch.seconds)


def audit_rows_since(database_url: str, last_id: int, action: str) -> list[str]:
    """Return the outcomes of the audit rows of ``action`` written after row ``last_id``, oldest first."""
    with psycopg.connect(libpq_url(database_url), connect_timeout=5) as conn:
        return [
            str(row[0])
            for row in conn.execute(
                "SELECT outcome FROM audit_log WHERE id > %s AND action = %s ORDER BY id", (last_id, action)
            )
        ]


def last_audit_id(database_url: str) -> int:
    """Return the id of the newest audit row (0: none)."""
    with psycopg.connect(libpq_url(database_url), connect_timeout=5) as conn:
        row = conn.execute("SELECT coalesce(max(id), 0) FROM audit_log").fetchone()
    return int(row[0]) if row else 0


def check_cell(what: str, fault: str, *, changed: bool, rows: list[str]) -> None:
    """Check the matrix's rules: no change without a row, no success without its change, else ``unknown``."""
    assert not changed or rows, f"{what} changed with no audit row under {fault}"
    assert "success" not in rows or changed, f"{what}: a success row without its change under {fault}: {rows}"
    if changed and "success" not in rows:
        assert rows[-1] == "unknown", f"{what}: a change whose outcome was not written must end unknown: {rows}"


def cell_text(*, changed: bool, rows: list[str], attempted: Attempt) -> str:
    """Return one cell of the matrix: the change, the rows, the error and the time."""
    error = f"; {attempted.error}" if attempted.error else ""
    change = "changed" if changed else "unchanged"
    return f"{change}; {' → '.join(rows) or 'no row'}{error}; {attempted.seconds:.1f} s"


@dataclass
class Stopwatch:
    """Seconds since it was made."""

    started: float = field(default_factory=time.monotonic)

    @property
    def seconds(self) -> float:
        """Return the seconds elapsed."""
        return time.monotonic() - self.started


def write_part(name: str, lines: list[str]) -> None:
    """Replace the part ``name`` of docs/reliability.md with ``lines``, keeping the others (sorted by name)."""
    parts: dict[str, str] = {}
    if RELIABILITY.exists():
        for chunk in RELIABILITY.read_text().split("<!-- part:")[1:]:
            key, _, body = chunk.partition(" -->")
            parts[key] = f"<!-- part:{key} -->{body}".rstrip() + "\n"
    parts[name] = "\n".join([f"<!-- part:{name} -->", *lines]).rstrip() + "\n"
    RELIABILITY.write_text(HEADER + "\n".join(parts[key] for key in sorted(parts)))
