"""Bad input in every box of the support pages: a clear message, and nothing changed or queried wrongly."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from core.bootstrap import Services, build_services
from core.domain.exceptions import InvalidInput
from core.domain.models import Actor, TimeWindow
from core.leaderboards import parse_subject, parse_window
from core.users import ExecutionCancel, PayloadReveal, TierChange, UserStatusChange
from dashboard.executions import parse_execution_params
from dashboard.time_range import RangeChoice
from queries import executions as q
from queries import users as user_queries
from queries.executions import ExecutionFilters
from tests.support.databases import SeedPlan
from tests.support.settings import AUDITOR, settings_for

SQL_METACHARACTERS = [
    "'; DROP TABLE users; --",
    "' OR '1'='1",
    "1; DELETE FROM prompt_executions",
    "%_%",
    "\\",
    'x" OR 1=1 --',
    "$1",
    ":user_id",
]
LONG = "a" * 10_000
NOW = datetime(2026, 11, 26, 5, 0, tzinfo=UTC)


@pytest.fixture()
def svc(seeded_copy: Callable[[SeedPlan], str], redis_url: str, redis_prefix: str) -> Iterator[Services]:
    """Services on a copy of a small seeded platform (seeded once per run) that the test may change."""
    url = seeded_copy(SeedPlan(executions=2_000, days=2, seed=9))
    built = build_services(settings_for(url, redis_url, redis_prefix))
    yield built
    built.close()


def fingerprint(services: Services) -> tuple[object, ...]:
    """Everything a bad input could have changed."""
    with services.db.read() as conn:
        return tuple(
            conn.execute(
                text(
                    "SELECT (SELECT md5(string_agg(id || tier || status, ',' ORDER BY id)) FROM users), "
                    "(SELECT count(*) FROM prompt_executions), "
                    "(SELECT md5(string_agg(id || status, ',' ORDER BY id)) FROM prompt_executions), "
                    "(SELECT count(*) FROM audit_log WHERE outcome = 'success')"
                )
            ).one()
        )


# -- ids -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "Enter the execution id"),
        ("abc", "must be a whole number"),
        ("-5", "must be a whole number"),
        ("1.5", "must be a whole number"),
        ("1e5", "must be a whole number"),
        ("0", "between 1 and"),
        ("99999999999999999999", "between 1 and"),
        ("１２３", "must be a whole number"),  # full-width digits
        (LONG, "must be a whole number"),
        *[(s, "must be a whole number") for s in SQL_METACHARACTERS],
    ],
)
def test_a_malformed_id_is_refused_with_a_clear_message(typed: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        q.parse_id(typed, what="execution id")


# -- emails and user search ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "Enter a user's email"),
        ("   ", "Enter a user's email"),
        ("ada@@example.com", "not an email address"),
        ("@example.com", "not an email address"),
        ("ada lovelace@example", "not an email address"),
        ("a", "at least two letters"),
        (LONG, "at most 200"),
        ("ada\nlovelace", "control characters"),
        ("0", "between 1 and"),
    ],
)
def test_a_malformed_user_search_is_refused(typed: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        user_queries.parse_lookup(typed)


@pytest.mark.parametrize("typed", ["Ada Lovelace", "ada.lovelace@", "ada"])
def test_a_name_or_partial_email_does_not_name_one_user_for_an_execution_search(typed: str) -> None:
    with pytest.raises(InvalidInput, match=r"by id .* or by full email"):
        user_queries.parse_user_ref(typed)


@pytest.mark.parametrize("typed", [*SQL_METACHARACTERS, "o'brien@example.com", "%@%.%", "_@_._"])
def test_sql_metacharacters_in_the_user_search_are_plain_text(svc: Services, typed: str) -> None:
    before = fingerprint(svc)
    try:
        lookup = user_queries.parse_lookup(typed)
    except InvalidInput:
        return  # refused with a message: also fine, nothing ran
    with svc.db.read() as conn:
        found = user_queries.find_users(conn, lookup)
    assert found == []  # no user's email or name starts with these characters
    assert fingerprint(svc) == before


def test_like_wildcards_in_a_prefix_match_only_themselves(svc: Services) -> None:
    with svc.db.read() as conn:
        everyone = user_queries.find_users(conn, user_queries.parse_lookup("%a"))
        real = user_queries.find_users(conn, user_queries.parse_lookup("ada"))
    assert everyone == []
    assert real and all(u.display_name.lower().startswith("ada") for u in real)


# -- the execution search's filters --------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"category": "not_a_category"}, "Unknown error category .*provider_timeout"),
        ({"category": "' OR 1=1 --"}, "Unknown error category"),
        ({"status": "done"}, "Unknown status .*queued"),
        ({"sort": "price"}, "Unknown sort order"),
        ({"order": "sideways"}, "Unknown order"),
        ({"provider": "openai'; DROP TABLE users; --"}, "not a provider name"),
        ({"model": "gpt 4o"}, "not a model name"),
        ({"model": "x" * 65}, "not a model name"),
        ({"user": "Ada Lovelace"}, "by id .* or by full email"),
        ({"user": "ada@@example.com"}, "not an email address"),
        ({"user": "-3"}, "by id .* or by full email|whole number"),
        ({"user": LONG}, "at most 200"),
        ({"provider": LONG}, "at most 200"),
        ({"category": LONG}, "at most 200"),
    ],
)
def test_bad_filters_in_a_link_are_refused_with_a_clear_message(params: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_execution_params(params)


def test_the_errors_pages_link_is_understood() -> None:
    parsed = parse_execution_params(
        {"category": "provider_timeout", "provider": "openai", "model": "gpt-4o", "status": "timed_out", "user": "42"}
    )
    assert (parsed.category, parsed.provider, parsed.model, parsed.status) == (
        "provider_timeout",
        "openai",
        "gpt-4o",
        "timed_out",
    )
    assert parsed.user is not None and parsed.user.user_id == 42


def test_a_reversed_range_is_refused() -> None:
    choice = RangeChoice.custom(NOW, NOW - timedelta(hours=2))
    with pytest.raises(InvalidInput, match="must be after its start"):
        choice.window(now=NOW)


def test_a_too_wide_range_is_refused_for_an_execution_search() -> None:
    wide = TimeWindow(start=NOW - timedelta(days=200), end=NOW)
    with pytest.raises(InvalidInput, match="at most 100 days"):
        ExecutionFilters(window=wide)
    with pytest.raises(InvalidInput, match="at most 400 days"):
        RangeChoice.custom(NOW - timedelta(days=500), NOW).window(now=NOW)


def test_a_page_size_out_of_range_is_refused(svc: Services) -> None:
    with svc.db.read() as conn, pytest.raises(InvalidInput, match="between 1 and 500"):
        q.search(conn, ExecutionFilters(window=TimeWindow.last(timedelta(days=1))), limit=10_000)


# -- the actions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: TierChange.of(user_id="abc", tier="pro", reason="r"), "user id"),
        (lambda: TierChange.of(user_id=0, tier="pro", reason="r"), "user id"),
        (lambda: TierChange.of(user_id=1, tier="platinum", reason="r"), "tier"),
        (lambda: TierChange.of(user_id=1, tier="pro'; --", reason="r"), "tier"),
        (lambda: UserStatusChange.of(user_id=2**64, reason="r"), "user id"),
        (lambda: ExecutionCancel.of(execution_id="1; DROP TABLE x", reason="r"), "execution id"),
        (lambda: PayloadReveal.of(execution_id=-1, reason="r"), "execution id"),
        (lambda: PayloadReveal.of(execution_id=1, reason=LONG), "reason"),
    ],
)
def test_bad_action_input_is_refused_before_anything_runs(build: Callable[[], object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        build()


@pytest.mark.parametrize("reason", ["", "   ", "x" * 1001])
def test_a_missing_or_overlong_reason_changes_nothing(svc: Services, support_actor: Actor, reason: str) -> None:
    before = fingerprint(svc)

    for action in (
        lambda: svc.users.change_tier(support_actor, TierChange(user_id=1, tier="enterprise", reason=reason)),
        lambda: svc.users.suspend(support_actor, UserStatusChange(user_id=1, reason=reason)),
        lambda: svc.users.cancel_execution(support_actor, ExecutionCancel(execution_id=1, reason=reason)),
        lambda: svc.users.reveal_payload(support_actor, PayloadReveal(execution_id=1, reason=reason)),
    ):
        with pytest.raises(InvalidInput, match="reason"):
            action()

    assert fingerprint(svc) == before
    assert [r.outcome for r in svc.audit.latest(AUDITOR, limit=4)] == ["invalid"] * 4


@pytest.mark.parametrize("reason", SQL_METACHARACTERS)
def test_a_reason_with_sql_metacharacters_is_stored_verbatim(svc: Services, support_actor: Actor, reason: str) -> None:
    svc.users.change_tier(support_actor, TierChange(user_id=1, tier="team", reason=reason))

    [row] = svc.audit.latest(AUDITOR)
    assert row.reason == reason.strip() and row.outcome == "success"
    with svc.db.read() as conn:
        assert conn.execute(text("SELECT count(*) FROM users")).scalar_one() > 0


def test_an_unknown_execution_or_user_changes_nothing(svc: Services, support_actor: Actor) -> None:
    before = fingerprint(svc)
    with pytest.raises(InvalidInput, match="No user has the id"):
        svc.users.restore(support_actor, UserStatusChange(user_id=10**12, reason="r"))
    with pytest.raises(InvalidInput, match="No execution has the id"):
        svc.users.reveal_payload(support_actor, PayloadReveal(execution_id=10**12, reason="r"))
    assert fingerprint(svc) == before


# -- leaderboards --------------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["month", "", LONG, "day'; --"])
def test_an_unknown_leaderboard_window_or_board_is_refused(typed: str) -> None:
    with pytest.raises(InvalidInput, match="use day, week or all"):
        parse_window(typed)
    with pytest.raises(InvalidInput, match="use user or prompt"):
        parse_subject(typed)


def test_a_leaderboard_of_too_many_rows_is_refused(svc: Services) -> None:
    with pytest.raises(InvalidInput, match="1 to 100 rows"):
        svc.leaderboards.top(parse_subject("user"), parse_window("week"), limit=5000)
