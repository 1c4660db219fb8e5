"""Execution search, detail, neighbours and CSV export against real PostgreSQL."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text

from core.bootstrap import Services, build_services
from core.domain.exceptions import InvalidInput
from core.domain.models import ErrorCategory, ExecutionStatus, TimeWindow
from queries import executions as q
from queries.executions import Cursor, ExecutionFilters, SortKey
from tests.support.databases import SHARED_PLAN, SeedPlan
from tests.support.settings import settings_for

# Its tests share the module's databases: one worker runs them all.
pytestmark = pytest.mark.xdist_group("executions")

ORDER_SQL = {
    SortKey.TIME: "created_at {d}, id {d}",
    SortKey.LATENCY: "COALESCE(latency_ms, -1) {d}, created_at {d}, id {d}",
    SortKey.COST: "cost_usd {d}, created_at {d}, id {d}",
}


@pytest.fixture(scope="module")
def seeded(seeded_database_url: str, redis_url: str, redis_prefix: str) -> Iterator[Services]:
    built = build_services(settings_for(seeded_database_url, redis_url, redis_prefix))
    yield built
    built.close()


@pytest.fixture(scope="module")
def whole_range(seeded: Services) -> TimeWindow:
    with seeded.db.read() as conn:
        newest = conn.execute(text("SELECT max(created_at) FROM prompt_executions")).scalar_one()
    return TimeWindow(start=newest - timedelta(days=SHARED_PLAN.days + 1), end=newest + timedelta(minutes=1))


@pytest.fixture(scope="module")
def busy_user(seeded: Services) -> int:
    with seeded.db.read() as conn:
        return int(
            conn.execute(
                text("SELECT user_id FROM prompt_executions GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1")
            ).scalar_one()
        )


def all_pages(services: Services, filters: ExecutionFilters, limit: int) -> list[int]:
    ids: list[int] = []
    cursor: Cursor | None = None
    while True:
        with services.db.read() as conn:
            page = q.search(conn, filters, after=cursor, limit=limit)
        assert len(page.rows) <= limit
        ids.extend(int(i) for i in page.rows["id"])
        if page.next_cursor is None:
            return ids
        # The cursor travels as a token (session state, link) and comes back the same.
        cursor = Cursor.decode(page.next_cursor.encode(), filters.sort)


@pytest.mark.parametrize(("sort", "descending"), [(k, d) for k in SortKey for d in (True, False)])
def test_paging_through_a_users_executions_shows_each_once_in_order(
    seeded: Services, whole_range: TimeWindow, busy_user: int, sort: SortKey, descending: bool
) -> None:
    filters = ExecutionFilters(window=whole_range, user_id=busy_user, sort=sort, descending=descending)

    shown = all_pages(seeded, filters, limit=37)

    direction = "DESC" if descending else "ASC"
    with seeded.db.read() as conn:
        expected = (
            conn.execute(
                text(
                    "SELECT id FROM prompt_executions WHERE user_id = :u AND created_at >= :s AND created_at < :e "
                    f"ORDER BY {ORDER_SQL[sort].format(d=direction)}"
                ),
                {"u": busy_user, "s": whole_range.start, "e": whole_range.end},
            )
            .scalars()
            .all()
        )
    assert len(expected) > 100
    assert shown == list(expected)


def test_filters_match_the_raw_table(seeded: Services, whole_range: TimeWindow) -> None:
    filters = ExecutionFilters(
        window=whole_range,
        status=ExecutionStatus.FAILED,
        category=ErrorCategory.PROVIDER_RATE_LIMITED,
        provider="anthropic",
        model="claude-sonnet-4",
    )

    shown = all_pages(seeded, filters, limit=q.MAX_PAGE_SIZE)

    with seeded.db.read() as conn:
        expected = set(
            conn.execute(
                text(
                    "SELECT id FROM prompt_executions WHERE status = 'failed' AND error_category = "
                    "'provider_rate_limited' AND provider = 'anthropic' AND model = 'claude-sonnet-4'"
                )
            ).scalars()
        )
        counted = q.count_matching(conn, filters)
    assert expected and set(shown) == expected and len(shown) == len(expected) == counted


def test_an_empty_search_has_no_next_page(seeded: Services) -> None:
    window = TimeWindow(start=datetime(2020, 1, 1, tzinfo=UTC), end=datetime(2020, 1, 2, tzinfo=UTC))
    with seeded.db.read() as conn:
        page = q.search(conn, ExecutionFilters(window=window))
    assert page.rows.empty and page.next_cursor is None


def test_the_detail_of_an_execution_names_its_user_and_prompt(seeded: Services) -> None:
    with seeded.db.read() as conn:
        row = conn.execute(
            text(
                "SELECT e.id, u.email, p.title, p.version FROM prompt_executions e JOIN users u ON u.id = e.user_id "
                "JOIN prompts p ON p.id = e.prompt_id JOIN execution_payloads x ON x.execution_id = e.id "
                "WHERE e.status = 'failed' ORDER BY e.id LIMIT 1"
            )
        ).one()
        detail = q.execution_detail(conn, row.id)
        missing = q.execution_detail(conn, 10**15)
    assert detail is not None and missing is None
    assert detail.execution.id == row.id
    assert detail.execution.status is ExecutionStatus.FAILED
    assert detail.execution.error_category is not None and detail.execution.error_message
    assert (detail.user_email, detail.prompt_title, detail.prompt_version) == (row.email, row.title, row.version)
    assert detail.has_payload


def test_executions_around_one_are_the_same_users_nearest(seeded: Services, busy_user: int) -> None:
    with seeded.db.read() as conn:
        middle = conn.execute(
            text(
                "SELECT id FROM prompt_executions WHERE user_id = :u ORDER BY created_at "
                "OFFSET (SELECT count(*) / 2 FROM prompt_executions WHERE user_id = :u) LIMIT 1"
            ),
            {"u": busy_user},
        ).scalar_one()
        detail = q.execution_detail(conn, middle)
        assert detail is not None
        around = q.executions_around(conn, detail.execution, n=5)
        ordered = (
            conn.execute(
                text("SELECT id FROM prompt_executions WHERE user_id = :u ORDER BY created_at, id"), {"u": busy_user}
            )
            .scalars()
            .all()
        )
    at = ordered.index(middle)
    assert list(around["id"]) == ordered[at - 5 : at] + ordered[at + 1 : at + 6]
    assert set(around["user_id"]) == {busy_user}


def test_the_csv_export_holds_every_matching_execution(
    seeded: Services, whole_range: TimeWindow, busy_user: int
) -> None:
    filters = ExecutionFilters(window=whole_range, user_id=busy_user, sort=SortKey.COST)

    with seeded.db.read() as conn:
        chunks = list(q.export_csv(conn, filters))
        expected = conn.execute(
            text(
                "SELECT id, cost_usd FROM prompt_executions WHERE user_id = :u AND created_at >= :s "
                "AND created_at < :e ORDER BY cost_usd DESC, created_at DESC, id DESC"
            ),
            {"u": busy_user, "s": whole_range.start, "e": whole_range.end},
        ).all()

    rows = list(csv.DictReader(io.StringIO(b"".join(c.data for c in chunks).decode())))
    assert sum(c.rows for c in chunks) == len(rows) == len(expected) > 0
    assert [int(r["id"]) for r in rows] == [e.id for e in expected]
    assert [Decimal(r["cost_usd"]) for r in rows] == [e.cost_usd for e in expected]
    assert list(rows[0]) == list(q.EXPORT_COLUMNS)
    assert all(r["created_at"].endswith("+00") for r in rows)
    assert "input_text" not in rows[0]


def test_a_large_export_comes_in_bounded_chunks(seeded: Services, whole_range: TimeWindow) -> None:
    with seeded.db.read() as conn:
        chunks = list(q.export_csv(conn, ExecutionFilters(window=whole_range)))
        total = conn.execute(text("SELECT count(*) FROM prompt_executions")).scalar_one()
    assert len(chunks) > 1
    assert all(len(c.data) < q.EXPORT_CHUNK_BYTES + 64 * 1024 for c in chunks)
    assert sum(c.rows for c in chunks) == total


@pytest.fixture()
def writable(seeded_copy: Callable[[SeedPlan], str], redis_url: str, redis_prefix: str) -> Iterator[Services]:
    """Services on a copy of a small seeded platform (seeded once per run) that the test may change."""
    url = seeded_copy(SeedPlan(executions=3_000, days=2, seed=11))
    built = build_services(settings_for(url, redis_url, redis_prefix))
    yield built
    built.close()


def test_pages_stay_correct_while_executions_arrive(writable: Services) -> None:
    with writable.db.read() as conn:
        user_id, newest = conn.execute(
            text("SELECT user_id, max(created_at) FROM prompt_executions GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")
        ).one()
        before = (
            conn.execute(
                text("SELECT id FROM prompt_executions WHERE user_id = :u ORDER BY created_at DESC, id DESC"),
                {"u": user_id},
            )
            .scalars()
            .all()
        )
    window = TimeWindow(start=newest - timedelta(days=3), end=newest + timedelta(hours=1))
    filters = ExecutionFilters(window=window, user_id=user_id)

    shown: list[int] = []
    cursor: Cursor | None = None
    arrived = 0
    while True:
        with writable.db.read() as conn:
            page = q.search(conn, filters, after=cursor, limit=7)
        shown.extend(int(i) for i in page.rows["id"])
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
        # Between pages: new executions arrive, one of them at the very moment the page ended.
        with writable.db.write() as conn:
            conn.execute(
                text(
                    "INSERT INTO prompt_executions (created_at, user_id, prompt_id, provider, model, status, "
                    "request_id) VALUES (:now, :u, 1, 'openai', 'gpt-4o', 'queued', 'req_new'), "
                    "(:at, :u, 1, 'openai', 'gpt-4o', 'queued', 'req_tie')"
                ),
                {"now": newest + timedelta(seconds=1 + arrived), "at": cursor.created_at, "u": user_id},
            )
        arrived += 2

    old = [i for i in shown if i in set(before)]
    assert old == list(before)
    assert len(shown) == len(set(shown))


def test_a_bad_cursor_is_refused() -> None:
    with pytest.raises(InvalidInput, match="first page"):
        Cursor.decode("not-a-cursor", SortKey.TIME)
    token = Cursor(key=Decimal("0.5"), created_at=datetime(2026, 1, 1, tzinfo=UTC), id=3).encode()
    with pytest.raises(InvalidInput):
        Cursor.decode(token, SortKey.TIME)
