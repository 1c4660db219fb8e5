"""The run's databases on the test server: made from templates, dropped together when the run ends.

Every database of a run is named ``krowoc_test_<run>_...``; the run id is shared by the parallel
workers of one run (pytest-xdist), so the run's end can drop them all. Three kinds exist:

- the migrated template (the schema at head, no rows), cloned for every test that needs an empty
  database;
- seeded templates, one per set of seed options, seeded once per run and cloned for every test
  that needs that platform and may write to it (``CREATE DATABASE ... TEMPLATE`` copies a few
  megabytes in well under a second, where seeding again takes one to two seconds);
- the clones themselves.

Templates are shared by the workers of a run: the first worker that needs one builds it under a
PostgreSQL advisory lock, under a temporary name that is renamed once the template is complete,
and the others wait for it and clone it. A template is never connected to after it is built
(PostgreSQL refuses to copy a database someone is connected to), so tests read and write clones.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psycopg

from core.adapters import migrate
from core.adapters.db import libpq_url, normalize_url
from core.executions import refresh

RUN_UID = os.environ.get("PYTEST_XDIST_TESTRUNUID") or uuid.uuid4().hex
"""The run's unique id: the controlling process hands it to every parallel worker (``--testrunuid``)."""
RUN_ID = RUN_UID[:8]
"""The run's id in database names and key prefixes, the same in every worker of the run."""
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
"""This process's name in the run (``gw0``, ``gw1``... under pytest-xdist)."""
PREFIX = "krowoc_test_"


def database_url(server_url: str, name: str) -> str:
    """Return the URL of database ``name`` on the server of ``server_url``."""
    base, _, _ = normalize_url(server_url).rpartition("/")
    return f"{base}/{name}"


@dataclass(frozen=True)
class SeedPlan:
    """What a seeded template holds: the seed's options, and whether the rollups were refreshed once after it."""

    executions: int
    days: int
    seed: int
    payload_fraction: float = 0.02
    refreshed: bool = False


SHARED_PLAN = SeedPlan(executions=40_000, days=14, seed=7)
"""The platform the read-only tests share: a fortnight of traffic."""
OPERATE_PLAN = SeedPlan(executions=30_000, days=3, seed=11, refreshed=True)
"""The operators' platform: a few busy days, refreshed once so its error table exists."""


class RunDatabases:
    """Creates, clones and finally drops the databases of one test run on one server."""

    def __init__(self, server_url: str, run_id: str = RUN_ID) -> None:
        self.server_url = server_url
        self.run_id = run_id
        self.created: list[str] = []
        self._numbers = itertools.count()
        self._lock = threading.Lock()
        self._migrated: str | None = None
        self._seeded: dict[SeedPlan, str] = {}

    def url(self, name: str) -> str:
        """Return the URL of one of the run's databases."""
        return database_url(self.server_url, name)

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(libpq_url(self.url("postgres")), autocommit=True, connect_timeout=10)

    def create(self, *, template: str | None = None) -> str:
        """Create a database (a copy of ``template`` when given); return its name."""
        with self._lock:
            name = f"{PREFIX}{self.run_id}_{WORKER}_{next(self._numbers)}"
            self.created.append(name)
        clause = f' TEMPLATE "{template}"' if template else ""
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"{clause}')
        return name

    def _shared_template(self, label: str, build: Callable[[str], None], *, template: str | None = None) -> str:
        """Return the run's template ``label``, built by ``build(url)`` by the first worker that asks for it."""
        name = f"{PREFIX}{self.run_id}_tpl_{label}"
        with self._admin() as conn:
            # One builder per template and run; the others wait here, then find it complete.
            conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (name,))
            try:
                if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                    building = f"{name}_building"
                    clause = f' TEMPLATE "{template}"' if template else ""
                    conn.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
                    conn.execute(f'CREATE DATABASE "{building}"{clause}')
                    build(self.url(building))
                    # Complete: only now does the template's own name exist.
                    conn.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
            finally:
                conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (name,))
        return name

    def migrated_template(self) -> str:
        """Return the template at the schema's head, migrating it on first use in this run."""
        with self._lock:
            known = self._migrated
        if known is None:
            known = self._shared_template("migrated", migrate.upgrade)
            with self._lock:
                self._migrated = known
        return known

    def seeded_template(self, plan: SeedPlan) -> str:
        """Return the template holding ``plan``'s platform, seeding it on first use in this run."""
        with self._lock:
            known = self._seeded.get(plan)
        if known is not None:
            return known

        def build(url: str) -> None:
            # Imported here: the seed loads pyarrow and the generator, which most test modules never need.
            from devstack.seed import SeedOptions, seed

            options = SeedOptions(
                executions=plan.executions, days=plan.days, seed=plan.seed, payload_fraction=plan.payload_fraction
            )
            seed(url, options, progress=False)
            if plan.refreshed:
                refresh.refresh(url)

        label = hashlib.sha256(repr(plan).encode()).hexdigest()[:12]
        known = self._shared_template(f"seeded_{label}", build, template=self.migrated_template())
        with self._lock:
            self._seeded[plan] = known
        return known

    def empty(self) -> str:
        """Return the URL of a new database with no schema at all."""
        return self.url(self.create())

    def migrated(self) -> str:
        """Return the URL of a new database at the schema's head, with no rows."""
        return self.url(self.create(template=self.migrated_template()))

    def seeded(self, plan: SeedPlan) -> str:
        """Return the URL of a new database holding ``plan``'s platform (a copy: write to it freely)."""
        return self.url(self.create(template=self.seeded_template(plan)))

    def drop_run(self) -> None:
        """Drop every database of the run, the shared templates included (at the very end of the run)."""
        with self._admin() as conn:
            names = [
                str(row[0])
                for row in conn.execute(
                    "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{PREFIX}{self.run_id}\\_%",)
                )
            ]
        self._drop(names)

    def _drop(self, names: list[str]) -> None:
        def drop(name: str) -> None:
            with self._admin() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(drop, names))
