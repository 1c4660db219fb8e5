"""Settings: the one place that reads the environment (prefix ``KROWOC_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Everything configurable about Krowoc Admin.

    With no database or Redis URL set, the embedded default (a PostgreSQL and a Valkey started by
    ``krowoc-admin stack up`` under ``state_dir``) is used.
    """

    model_config = SettingsConfigDict(env_prefix="KROWOC_", env_file=None, extra="ignore")

    database_url: str | None = Field(default=None, description="Primary PostgreSQL (writes, audit).")
    database_replica_url: str | None = Field(default=None, description="Read replica; reads fall back.")
    database_owner_url: str | None = Field(
        default=None,
        description="The owner of the schema, for `migrate`, `seed` and `db roles`; default KROWOC_DATABASE_URL.",
    )
    app_role_password: SecretStr | None = Field(
        default=None, description="`krowoc-admin db roles` sets it as the app role's password (sent as a verifier)."
    )
    readonly_role_password: SecretStr | None = Field(
        default=None, description="`krowoc-admin db roles` sets it as the read-only role's password."
    )
    allow_owner: bool = Field(
        default=False,
        description="Let the dashboard connect as a superuser or as the owner of audit_log (who can rewrite it).",
    )
    redis_url: str | None = None
    redis_cluster: bool = Field(
        default=False,
        description="KROWOC_REDIS_URL names a node of a Redis Cluster: talk to the cluster (needs KROWOC_REDIS_URL).",
    )
    redis_key_prefix: str = "krowoc:"
    unleash_url: str | None = None
    unleash_admin_token: SecretStr | None = None
    unleash_client_token: SecretStr | None = None
    prometheus_url: str | None = None

    state_dir: Path = PROJECT_ROOT / ".krowoc"
    embedded_postgres_port: int = 54329
    embedded_redis_port: int = 63799
    embedded_unleash_port: int = 44242
    unleash_timeout_seconds: float = Field(default=3.0, gt=0, description="Timeout of one Unleash Admin API call.")
    unleash_refresh_seconds: int = Field(default=5, ge=1, description="How often the Unleash client refetches flags.")
    unleash_backup_dir: Path | None = Field(default=None, description="Unleash client backup; default state_dir.")
    node_binary: Path | None = Field(
        default=None,
        description="The node that runs the embedded Unleash and OpenID provider; default: the venv's (PyPI).",
    )
    node_packages_dir: Path = Field(
        default=PROJECT_ROOT / ".krowoc" / "node",
        description="Where `npm ci` installs the embedded stack's Node packages from devstack/node's lockfile.",
    )

    statement_timeout_ms: int = Field(default=5000, ge=100, description="Dashboard read timeout.")
    execution_retention_days: int = Field(default=400, ge=1, description="Days of executions kept and shown.")
    pool_size: int = Field(default=5, ge=1)
    pool_timeout_seconds: float = Field(default=5.0, gt=0, description="Longest wait for a free pooled connection.")
    connect_timeout_seconds: int = Field(
        default=5, ge=2, le=60, description="Longest wait for PostgreSQL to accept a new connection (at least 2)."
    )
    query_grace_seconds: float = Field(
        default=2.0, ge=0, description="A read's client-side deadline: the statement timeout plus this."
    )
    write_timeout_seconds: float = Field(default=30.0, gt=0, description="A write transaction's client-side deadline.")
    action_limits: dict[str, str] = Field(
        default_factory=dict,
        description='Per-person action limits as JSON, per minute/burst: {"execution.reveal_payload": "10/5"}.',
    )
    action_limit_default: str = Field(default="30/10", description="Every other action's per-person limit.")
    replica_retry_seconds: float = Field(default=30.0, ge=0)
    metrics_port: int | None = Field(
        default=None,
        ge=1024,
        le=65535,
        description="Serve the dashboard's metrics (admin actions, the audit head) on 127.0.0.1:<port>/metrics.",
    )
    export_max_rows: int = Field(
        default=200_000, ge=1, le=1_000_000, description="The most executions one CSV export writes."
    )

    dev_login: bool | None = Field(
        default=None,
        description="Offer the dev login (pick a role). Defaults to on for the embedded default only.",
    )
    oidc_configured: bool = Field(
        default=False, description="An [auth] section for st.login exists in .streamlit/secrets.toml."
    )
    admin_emails: str = Field(default="", description="Comma-separated emails mapped to the admin role.")

    # Test and benchmark knobs (read here so nothing else touches os.environ).
    test_database_url: str | None = None
    test_redis_url: str | None = None
    require_all_tools: bool = Field(
        default=False, description="In CI: a test that would skip for a missing tool fails instead."
    )
    chromium_path: Path = Path("/usr/bin/chromium")
    ci: bool = Field(default=False, validation_alias="CI")

    @field_validator(
        "database_url",
        "database_replica_url",
        "database_owner_url",
        "redis_url",
        "unleash_url",
        "prometheus_url",
        "test_database_url",
        "test_redis_url",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _cluster_needs_a_url(self) -> Settings:
        if self.redis_cluster and self.redis_url is None:
            raise ValueError(
                "KROWOC_REDIS_CLUSTER=true needs KROWOC_REDIS_URL set to a node of the cluster "
                "(the embedded Valkey is a single server)."
            )
        return self

    @property
    def embedded(self) -> bool:
        """Whether the embedded default stack provides PostgreSQL and Redis."""
        return self.database_url is None

    @property
    def dev_login_enabled(self) -> bool:
        """Whether the dev login is offered."""
        return self.embedded if self.dev_login is None else self.dev_login


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read once from the environment."""
    return Settings()
