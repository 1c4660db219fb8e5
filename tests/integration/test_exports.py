"""CSV exports of executions: who may, how many, one at a time per person, audited, formulas kept as text."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from sqlalchemy import text

from core.bootstrap import Services, build_services
from core.domain.exceptions import InvalidInput
from core.domain.models import AuditOutcome, Role, TimeWindow
from core.domain.rbac import PermissionDenied
from core.executions.export import ExportBusy
from queries import executions as q
from queries.executions import ExecutionFilters
from tests.support.databases import SeedPlan
from tests.support.settings import AUDITOR, actor, settings_for

PLAN = SeedPlan(executions=2_000, days=2, seed=31)
SUPPORT = actor(Role.SUPPORT)


@pytest.fixture()
def platform(seeded_copy: Callable[[SeedPlan], str]) -> str:
    return seeded_copy(PLAN)


@pytest.fixture()
def exports(platform: str, redis_url: str, prefix: str) -> Iterator[Services]:
    built = build_services(settings_for(platform, redis_url, prefix))
    yield built
    built.close()


def everything(services: Services) -> ExecutionFilters:
    with services.db.read() as conn:
        newest = conn.execute(text("SELECT max(created_at) FROM prompt_executions")).scalar_one()
    return ExecutionFilters(window=TimeWindow(start=newest - timedelta(days=7), end=newest + timedelta(minutes=1)))


def export(services: Services, who: object = SUPPORT, filters: ExecutionFilters | None = None) -> tuple[str, int]:
    sink = io.BytesIO()
    report = q.export_search(services.exports, who, filters or everything(services), sink, lambda _d, _t: None)  # type: ignore[arg-type]
    return sink.getvalue().decode(), report.rows


def export_rows(services: Services) -> list[tuple[str, str, dict[str, object] | None]]:
    return [
        (r.outcome.value, r.target_id, r.after)
        for r in services.audit.search(AUDITOR, action="executions.export", limit=20)
    ]


def test_support_exports_and_the_audit_row_names_filters_and_rows(exports: Services) -> None:
    data, rows = export(exports)
    assert rows == PLAN.executions == len(list(csv.DictReader(io.StringIO(data))))
    [(success, target, after), (pending, _, _)] = export_rows(exports)
    assert (success, pending) == ("success", "pending")
    assert target.startswith("from=") and after is not None
    assert after["rows"] == PLAN.executions and after["bytes"] == len(data.encode())
    assert set(after["filters"]) == {"from", "to"}  # type: ignore[arg-type]


@pytest.mark.parametrize("role", [Role.VIEWER, Role.OPERATOR, Role.PRODUCT])
def test_other_roles_are_refused_and_recorded(exports: Services, role: Role) -> None:
    sink = io.BytesIO()
    with pytest.raises(PermissionDenied):
        q.export_search(exports.exports, actor(role), everything(exports), sink, lambda _d, _t: None)
    assert sink.getvalue() == b""
    assert [outcome for outcome, _, _ in export_rows(exports)] == ["denied"]


def test_a_search_wider_than_the_cap_is_refused_before_a_byte(platform: str, redis_url: str, prefix: str) -> None:
    capped = build_services(settings_for(platform, redis_url, prefix, export_max_rows=500))
    try:
        sink = io.BytesIO()
        with pytest.raises(InvalidInput, match="more than 500 executions"):
            q.export_search(capped.exports, SUPPORT, everything(capped), sink, lambda _d, _t: None)
        assert sink.getvalue() == b""
        assert [outcome for outcome, _, _ in export_rows(capped)] == ["invalid"]
        assert not capped.redis.exists(capped.exports.lock_key(SUPPORT))
    finally:
        capped.close()


def test_one_export_at_a_time_per_person(exports: Services) -> None:
    started: list[int] = []

    def second_export(done: int, _total: int) -> None:
        if not started:
            started.append(done)
            with pytest.raises(ExportBusy, match="still being written"):
                export(exports)
            # Someone else may export meanwhile.
            assert export(exports, actor(Role.SUPPORT, "other@krowoc.test"))[1] == PLAN.executions

    sink = io.BytesIO()
    q.export_search(exports.exports, SUPPORT, everything(exports), sink, second_export)
    assert started
    assert not exports.redis.exists(exports.exports.lock_key(SUPPORT))
    assert export(exports)[1] == PLAN.executions  # the lock went with the first export
    outcomes = [o for o, _, _ in export_rows(exports)]
    assert outcomes.count("invalid") == 1 and outcomes.count("success") == 3


@pytest.mark.parametrize(
    "planted", ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\r=1"]
)
def test_cells_that_would_run_as_formulas_stay_text(exports: Services, planted: str) -> None:
    with exports.db.write() as conn:
        target = conn.execute(
            text(
                "UPDATE prompt_executions SET error_message = :m, request_id = :m "
                "WHERE id = (SELECT min(id) FROM prompt_executions) RETURNING id"
            ),
            {"m": planted},
        ).scalar_one()
    data, _ = export(exports)
    [row] = [r for r in csv.DictReader(io.StringIO(data, newline="")) if int(r["id"]) == target]
    assert row["error_message"] == row["request_id"] == "'" + planted
    untouched = [r for r in csv.DictReader(io.StringIO(data, newline="")) if r["cost_usd"]]
    assert all(not r["cost_usd"].startswith("'") for r in untouched)


def test_with_redis_away_exports_still_run_one_at_a_time_in_the_process(platform: str, prefix: str) -> None:
    away = build_services(settings_for(platform, "redis://127.0.0.1:1/0", prefix))
    try:
        busy: list[bool] = []

        def again(_done: int, _total: int) -> None:
            if not busy:
                busy.append(True)
                with pytest.raises(ExportBusy):
                    export(away)

        q.export_search(away.exports, SUPPORT, everything(away), io.BytesIO(), again)
        assert busy and export(away)[1] == PLAN.executions
        outcomes = [o for o, _, _ in export_rows(away)]
        assert outcomes.count(AuditOutcome.INVALID.value) == 1 and outcomes.count(AuditOutcome.SUCCESS.value) == 2
    finally:
        away.close()
