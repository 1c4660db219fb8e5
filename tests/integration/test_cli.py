"""The command line: one-line errors that change nothing, and the commands doing their work."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest

from cli.main import main
from core.adapters import migrate
from core.config import get_settings


@pytest.fixture()
def cli_database(make_database: Callable[..., str], monkeypatch: pytest.MonkeyPatch) -> str:
    url = make_database()
    monkeypatch.setenv("KROWOC_DATABASE_URL", url)
    monkeypatch.setenv("KROWOC_REDIS_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def _count(url: str, table: str) -> int:
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["seed", "--executions", "abc"], "--executions"),
        (["seed", "--executions", "-5"], "greater than or equal to 1"),
        (["seed", "--days", "0"], "--days"),
        (["seed", "--days", "9999"], "--days"),
        (["seed", "--bogus"], "No such option"),
        (["seed", "--reset", "--if-empty"], "contradict"),
        (["partitions", "ensure", "--since", "2026-13"], "2026-01"),
        (["partitions", "ensure", "--months-ahead", "-1"], "--months-ahead"),
    ],
)
def test_bad_arguments_give_one_line_and_change_nothing(
    cli_database: str, capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and "\n" not in err
    assert needle in err
    assert _count(cli_database, "users") == 0
    assert _count(cli_database, "prompt_executions") == 0


def test_seed_then_refuse_then_if_empty(cli_database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["seed", "--executions", "3000", "--days", "2", "--seed", "5", "--no-progress"]) == 0
    assert "3,000 executions" in capsys.readouterr().out
    assert main(["seed", "--executions", "10", "--days", "1", "--no-progress"]) == 2
    assert "already seeded" in capsys.readouterr().err
    assert main(["seed", "--if-empty", "--no-progress"]) == 0
    assert _count(cli_database, "prompt_executions") == 3000


def test_partitions_ensure_creates_months_ahead(cli_database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["partitions", "ensure", "--months-ahead", "8"]) == 0
    with psycopg.connect(cli_database.replace("postgresql+psycopg://", "postgresql://")) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'prompt_executions'::regclass"
            )
        ]
    assert len(names) >= 9
    assert main(["partitions", "ensure", "--months-ahead", "8"]) == 0
    assert "Created 0 partition(s)" in capsys.readouterr().out.splitlines()[-1]


def test_rollups_rebuild_and_migrate_report(cli_database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["seed", "--executions", "2000", "--days", "1", "--no-progress"]) == 0
    minute_rows = _count(cli_database, "execution_rollup_minute")
    assert main(["rollups", "rebuild"]) == 0
    assert _count(cli_database, "execution_rollup_minute") == minute_rows
    assert main(["migrate"]) == 0
    assert f"revision {migrate.heads()[0]}" in capsys.readouterr().out


def test_unreachable_database_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KROWOC_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    get_settings.cache_clear()
    try:
        assert main(["seed", "--executions", "10", "--no-progress"]) == 2
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot reach PostgreSQL") and "\n" not in err


def test_a_command_that_exits_with_a_code_returns_that_code(
    cli_database: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Unleash answers nowhere: `flags seed` says so on one line and exits 2, not 0.
    monkeypatch.setenv("KROWOC_UNLEASH_URL", "http://127.0.0.1:1/api")
    monkeypatch.setenv("KROWOC_UNLEASH_ADMIN_TOKEN", "*:*.unused")
    get_settings.cache_clear()
    assert main(["flags", "seed"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err


def _execute(url: str, *statements: str) -> None:
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        for statement in statements:
            conn.execute(statement)


def test_verify_passes_on_sound_data_and_names_each_kind_of_damage(
    cli_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["seed", "--executions", "3000", "--days", "2", "--seed", "9", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["verify", "--seed", "1"]) == 0, capsys.readouterr().err
    assert "check out" in capsys.readouterr().out

    # The newest folded hour is always in the sample: make its rollup disagree with the raw rows.
    _execute(
        cli_database,
        """
        UPDATE execution_rollup_hour SET executions = executions + 1
        WHERE (bucket_start, provider, model, status, error_category) = (
            SELECT bucket_start, provider, model, status, error_category FROM execution_rollup_hour
            WHERE bucket_start < date_trunc('hour', least(
                (SELECT watermark FROM rollup_watermarks WHERE name = 'executions'), now()))
            ORDER BY bucket_start DESC LIMIT 1)
        """,
    )
    assert main(["verify", "--seed", "1"]) == 1
    err = capsys.readouterr().err
    assert "rollups: the hour rollup of" in err and "krowoc-admin rollups rebuild" in err
    assert main(["rollups", "rebuild"]) == 0
    assert main(["verify", "--seed", "1"]) == 0

    # A month ahead without its partition would refuse the first execution of that month.
    _execute(
        cli_database,
        """
        DO $$ DECLARE last text; BEGIN
            SELECT c.relname INTO last FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'prompt_executions'::regclass ORDER BY c.relname DESC LIMIT 1;
            EXECUTE format('DROP TABLE %I', last);
        END $$
        """,
    )
    capsys.readouterr()
    assert main(["verify", "--months-ahead", "12"]) == 1
    err = capsys.readouterr().err
    assert "partitions: no partition for" in err and "krowoc-admin partitions ensure --since" in err
    assert "rollups" not in err and "audit" not in err


def test_verify_names_the_audit_row_that_was_rewritten(cli_database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["seed", "--executions", "500", "--days", "1", "--no-progress"]) == 0
    assert main(["rollups", "rebuild"]) == 0  # both audited: the chain has rows
    _execute(
        cli_database,
        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only",  # what only the owner can do
        "UPDATE audit_log SET actor = 'someone-else' WHERE id = (SELECT min(id) FROM audit_log)",
    )
    capsys.readouterr()
    assert main(["verify"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("audit: the audit log was changed at row ") and "\n" not in err
