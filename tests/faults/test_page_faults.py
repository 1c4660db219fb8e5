"""Every page with PostgreSQL or Redis frozen: it answers with a clear message, and recovers by itself.

Each page is opened (in-process, AppTest) on the fault tests' own servers while one of them is
frozen (SIGSTOP), then again once it goes on. The page must finish with no exception (AppTest's
timeout is the hard bound), say which part is down when it needed it, and show no such message
once the server answers again, with the same services (nothing restarted). How long each took is
written into docs/reliability.md (part ``pages``), beside the deadline the settings give a read.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.config import get_settings
from core.domain.models import Role
from tests.faults.conftest import TIMEOUTS
from tests.support.apptest import PAGES, signed_in_app, texts
from tests.support.faults import PrivateServers, Stopwatch, write_part

pytestmark = pytest.mark.xdist_group("faults")

PG, VALKEY = "postgres", "valkey"
DEPENDENCIES = {PG: "PostgreSQL", VALKEY: "Redis"}
PAGE_FILES = sorted(path.name for path in PAGES.glob("*.py") if path.name != "__init__.py")
READ_DEADLINE = TIMEOUTS["statement_timeout_ms"] / 1000 + TIMEOUTS["query_grace_seconds"]
DOWN_WORDS = (" fail ", "down", "unreachable", "did not answer", "no answer", "unavailable")
CELLS: dict[tuple[str, str], dict[str, Any]] = {}


@pytest.fixture(scope="module", autouse=True)
def matrix() -> Iterator[None]:
    """Write the matrix into docs/reliability.md once every cell ran."""
    yield
    if len(CELLS) == len(PAGE_FILES) * len(DEPENDENCIES):
        write_part("pages", _table())


@pytest.fixture()
def dashboard(private: PrivateServers, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point the in-process dashboard at the fault tests' servers, with their short deadlines."""
    monkeypatch.setenv("KROWOC_DATABASE_URL", private.database_url)
    monkeypatch.setenv("KROWOC_REDIS_URL", private.redis_url)
    monkeypatch.setenv("KROWOC_REDIS_KEY_PREFIX", "krowoc-faults-pages:")
    monkeypatch.setenv("KROWOC_DEV_LOGIN", "true")
    for name, value in TIMEOUTS.items():
        monkeypatch.setenv(f"KROWOC_{name.upper()}", str(value))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


PARAMS = {"users.py": {"q": "one@faults.test"}}
"""A link that makes the page read: the Users page reads nothing until someone is looked up."""


def _open(page: str) -> tuple[list[str], float]:
    at = signed_in_app(Role.ADMIN, timeout=60)
    at.switch_page(str(PAGES / page))
    at.query_params.update(PARAMS.get(page, {}))
    watch = Stopwatch()
    at.run()
    seconds = watch.seconds
    assert not at.exception, [e.value for e in at.exception]
    # The Health page reports each part in its table, the others in an alert.
    tables = [" ".join(map(str, row)) for frame in at.dataframe for row in frame.value.itertuples()]
    return texts(at.error) + texts(at.warning) + tables, seconds


@pytest.mark.parametrize("dependency", list(DEPENDENCIES))
@pytest.mark.parametrize("page", PAGE_FILES)
def test_a_page_answers_while_a_server_is_frozen_and_recovers(
    private: PrivateServers, dashboard: None, page: str, dependency: str
) -> None:
    name = DEPENDENCIES[dependency]
    pids = private.freeze(dependency)
    try:
        during, seconds = _open(page)
    finally:
        private.thaw(pids)
    after, after_seconds = _open(page)
    said = [
        message
        for message in during
        if name in message
        and ("fail" in message or "down" in message or "unreachable" in message or "did not answer" in message)
    ]
    CELLS[(page, dependency)] = {"said": said[0] if said else "", "seconds": seconds, "after": after_seconds}
    assert not [message for message in after if _says_down(message, name)], f"{page} did not recover: {after}"
    if dependency == PG and page not in {"cache.py", "flags.py"}:
        assert said, f"{page} did not say PostgreSQL is down: {during}"


def _says_down(message: str, name: str) -> bool:
    return name in message and any(word in message for word in DOWN_WORDS)


def _table() -> list[str]:
    lines = [
        "## Pages",
        "",
        f"A read's deadline here is {READ_DEADLINE:g} s (statement timeout plus grace); a new connection",
        f"gives up after {TIMEOUTS['connect_timeout_seconds']} s. Each cell: the seconds the page took with the",
        "server frozen, what it said about it, and the seconds it took once the server went on.",
        "",
        "| page | " + " | ".join(f"{label} frozen" for label in DEPENDENCIES.values()) + " |",
        "| --- | " + " | ".join("---" for _ in DEPENDENCIES) + " |",
    ]
    for page in PAGE_FILES:
        cells = []
        for dependency in DEPENDENCIES:
            cell = CELLS[(page, dependency)]
            said = cell["said"].replace("|", "/")[:90] or "no message (the page did not need it)"
            cells.append(f"{cell['seconds']:.1f} s: {said}; then {cell['after']:.1f} s")
        lines.append(f"| {Path(page).stem} | " + " | ".join(cells) + " |")
    return [*lines, ""]
