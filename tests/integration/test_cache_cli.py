"""``krowoc-admin cache ...`` against real PostgreSQL and Redis: audited invalidation, status, resets."""

from __future__ import annotations

import pytest
import redis
from sqlalchemy import create_engine, insert, select

from cli.environment import os_user
from cli.main import main
from core.adapters.db import normalize_url
from core.adapters.tables import AuditLogRow, UserRow
from core.cache.keys import Namespace, version_key
from core.config import get_settings


def _audit(url: str) -> list[tuple[str, str, str, str | None]]:
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(AuditLogRow.action, AuditLogRow.actor, AuditLogRow.outcome, AuditLogRow.reason).order_by(
                    AuditLogRow.id
                )
            ).all()
            return [tuple(row) for row in rows]  # type: ignore[misc]
    finally:
        engine.dispose()


def test_invalidating_a_tier_from_the_shell_is_audited(
    cli_env: tuple[str, str], redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url, prefix = cli_env
    assert (
        main(["cache", "invalidate", "--tier", "leaderboard", "--reason", "nightly recompute", "--actor", "ops"]) == 0
    )
    assert "leaderboard -> v1" in capsys.readouterr().out
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.get(version_key(prefix, Namespace.LEADERBOARD)) == b"1"
    finally:
        client.close()
    # Redis is outside the transaction: the intent is recorded before the invalidation, then its outcome.
    assert _audit(url) == [
        ("cache.invalidate_tier", f"system:{os_user()}:ops", "pending", "nightly recompute"),
        ("cache.invalidate_tier", f"system:{os_user()}:ops", "success", "nightly recompute"),
    ]


def test_a_bad_namespace_or_both_targets_are_refused(
    cli_env: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = cli_env
    assert main(["cache", "invalidate", "--namespace", "sessions", "--reason", "x"]) == 2
    assert "Unknown cache namespace 'sessions'" in capsys.readouterr().err
    assert main(["cache", "invalidate", "--namespace", "leaderboard", "--tier", "user", "--reason", "x"]) == 2
    assert "exactly one of" in capsys.readouterr().err
    assert [row[2] for row in _audit(url)] == ["invalid"]


def test_with_redis_down_an_invalidation_fails_in_one_line_and_is_audited(
    cli_env: tuple[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = cli_env
    monkeypatch.setenv("KROWOC_REDIS_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    with pytest.raises(SystemExit) as exited:
        main(["cache", "invalidate", "--tier", "user", "--reason", "flush"])
    assert exited.value.code == 1
    assert capsys.readouterr().err.startswith("error: Redis is down: nothing was invalidated")
    assert [row[2] for row in _audit(url)] == ["pending", "failed"]


def test_status_and_a_rate_limit_reset(cli_env: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = cli_env
    engine = create_engine(normalize_url(url))
    with engine.begin() as conn:
        conn.execute(insert(UserRow).values(id=5, email="five@example.com", display_name="Five", tier="team"))
    engine.dispose()
    assert main(["cache", "status"]) == 0
    assert "keys" in capsys.readouterr().out
    assert main(["cache", "reset-rate-limit", "5", "--reason", "stuck client"]) == 0
    assert "200 of 200 tokens (team)" in capsys.readouterr().out
    # Audited as the machine account that ran the command.
    assert _audit(url)[-1] == ("user.reset_rate_limit", f"system:{os_user()}", "success", "stuck client")
