"""Settings: read from ``KROWOC_*`` variables; the embedded default and the dev login follow from them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.config import Settings, get_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start every test from an environment with no Krowoc settings (a CI run may set some)."""
    for name in list(os.environ):
        if name.upper().startswith("KROWOC_") or name.upper() == "CI":
            monkeypatch.delenv(name)


def test_defaults_are_the_embedded_stack_with_dev_login() -> None:
    settings = Settings()
    assert settings.database_url is None
    assert settings.embedded
    assert settings.dev_login_enabled
    assert settings.redis_key_prefix == "krowoc:"
    assert settings.statement_timeout_ms == 5000


def test_values_come_from_prefixed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KROWOC_DATABASE_URL", "postgresql://db.internal/krowoc")
    monkeypatch.setenv("KROWOC_DATABASE_REPLICA_URL", "postgresql://replica.internal/krowoc")
    monkeypatch.setenv("KROWOC_REDIS_URL", "redis://cache.internal:6379/0")
    monkeypatch.setenv("KROWOC_STATEMENT_TIMEOUT_MS", "2500")
    monkeypatch.setenv("KROWOC_STATE_DIR", "/tmp/krowoc-state")
    settings = Settings()
    assert settings.database_url == "postgresql://db.internal/krowoc"
    assert settings.database_replica_url == "postgresql://replica.internal/krowoc"
    assert settings.redis_url == "redis://cache.internal:6379/0"
    assert settings.statement_timeout_ms == 2500
    assert settings.state_dir == Path("/tmp/krowoc-state")


def test_unprefixed_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://elsewhere/db")
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere:6379/0")
    settings = Settings()
    assert settings.database_url is None
    assert settings.redis_url is None


def test_a_real_database_turns_off_the_embedded_default_and_the_dev_login(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KROWOC_DATABASE_URL", "postgresql://db.internal/krowoc")
    settings = Settings()
    assert not settings.embedded
    assert not settings.dev_login_enabled


def test_dev_login_can_be_forced_either_way(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KROWOC_DEV_LOGIN", "false")
    assert Settings().embedded
    assert not Settings().dev_login_enabled
    monkeypatch.setenv("KROWOC_DATABASE_URL", "postgresql://db.internal/krowoc")
    monkeypatch.setenv("KROWOC_DEV_LOGIN", "true")
    assert Settings().dev_login_enabled


def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KROWOC_STATEMENT_TIMEOUT_MS", "10")
    with pytest.raises(ValidationError, match="statement_timeout_ms"):
        Settings()


def test_tokens_are_kept_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KROWOC_UNLEASH_ADMIN_TOKEN", "*:*.very-secret")
    settings = Settings()
    assert settings.unleash_admin_token is not None
    assert settings.unleash_admin_token.get_secret_value() == "*:*.very-secret"
    assert "very-secret" not in repr(settings)


def test_ci_is_read_without_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not Settings().ci
    monkeypatch.setenv("CI", "true")
    assert Settings().ci


def test_get_settings_reads_once_until_cleared(monkeypatch: pytest.MonkeyPatch) -> None:
    get_settings.cache_clear()
    try:
        first = get_settings()
        monkeypatch.setenv("KROWOC_REDIS_KEY_PREFIX", "other:")
        assert get_settings() is first
        get_settings.cache_clear()
        assert get_settings().redis_key_prefix == "other:"
    finally:
        get_settings.cache_clear()
