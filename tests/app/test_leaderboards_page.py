"""The Leaderboards page in-process (AppTest): the boards, the rule, and the operator's recompute."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.bootstrap import Services
from core.domain.models import Role
from core.leaderboards import MIN_EXECUTIONS, LeaderboardRecompute, Subject, Window
from tests.support.apptest import button, errors, open_page, run, successes
from tests.support.databases import SeedPlan
from tests.support.settings import AUDITOR


@pytest.fixture()
def fresh(seeded_copy: Callable[[SeedPlan], str], dashboard_on: Callable[[str], Services]) -> Services:
    """Point the dashboard at a copy of a seeded platform the test may change."""
    return dashboard_on(seeded_copy(SeedPlan(executions=20_000, days=8, seed=29)))


def test_an_operator_recomputes_and_sees_the_top_users_with_the_rule(fresh: Services) -> None:
    at = open_page("leaderboards.py", Role.OPERATOR)
    assert any("No ranking has been computed" in i.value for i in at.info)

    at.text_input(key="leaderboards.reason").input("first run")
    button(at, "Recompute now").click()
    run(at)

    assert any("Recomputed at" in s for s in successes(at))
    [table] = at.dataframe
    board = fresh.leaderboards.from_table(Subject.USER, Window.WEEK)
    assert board is not None
    assert list(table.value["id"]) == [r.subject_id for r in board.rows]
    assert list(table.value["rank"]) == list(range(1, len(board.rows) + 1))
    assert any(f"at least {MIN_EXECUTIONS[Window.WEEK]} scored executions" in c.value for c in at.caption)
    [record] = fresh.audit.search(AUDITOR, action="leaderboards.recompute")
    assert record.reason == "first run" and record.actor == "dev:operator"


def test_the_link_names_the_board_and_window(fresh: Services, operator_actor: object) -> None:
    fresh.leaderboards.refresh(operator_actor, LeaderboardRecompute(reason="setup"))  # type: ignore[arg-type]

    at = open_page("leaderboards.py", Role.SUPPORT, {"board": "prompt", "window": "day"})

    assert at.segmented_control(key="leaderboards.subject").value == Subject.PROMPT
    assert at.segmented_control(key="leaderboards.window").value == Window.DAY
    [table] = at.dataframe
    board = fresh.leaderboards.from_table(Subject.PROMPT, Window.DAY)
    assert board is not None and list(table.value["id"]) == [r.subject_id for r in board.rows]
    assert "prompt" in table.value.columns
    # Support reads the boards but does not recompute them.
    assert not [b for b in at.button if b.label == "Recompute now"]

    at.segmented_control(key="leaderboards.window").set_value(Window.ALL)
    run(at)
    assert at.query_params["window"] in ("all", ["all"])


@pytest.mark.parametrize(
    ("params", "message"), [({"window": "month"}, "use day, week or all"), ({"board": "'; --"}, "use user or prompt")]
)
def test_a_bad_link_shows_a_message(fresh: Services, params: dict[str, str], message: str) -> None:
    at = open_page("leaderboards.py", Role.OPERATOR, params)

    assert len(errors(at)) == 1 and message in errors(at)[0]
    assert not at.dataframe
