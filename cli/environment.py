"""What every command shares: the settings, the database they point at, a staff actor, one-line failures."""

from __future__ import annotations

import getpass
import os
from typing import NoReturn

import psycopg
import typer

from core.adapters.db import libpq_url
from core.config import Settings, get_settings
from core.domain.exceptions import DatabaseUnavailable
from core.domain.models import Actor, AuditSource, Role
from core.endpoints import resolve_endpoints


def settings() -> Settings:
    """Return the process's settings (read once from the environment)."""
    return get_settings()


def database_url() -> str:
    """Return the owner's URL of the database the commands migrate, seed and grant on.

    ``KROWOC_DATABASE_OWNER_URL``, else ``KROWOC_DATABASE_URL``, else the embedded superuser's.
    """
    return resolve_endpoints(settings()).database_owner_url


def connect(url: str) -> psycopg.Connection:
    """Open a plain connection, or raise ``DatabaseUnavailable`` saying how to get PostgreSQL up."""
    try:
        return psycopg.connect(libpq_url(url), connect_timeout=5)
    except psycopg.OperationalError as exc:
        hint = "run `krowoc-admin stack up`" if settings().embedded else "check KROWOC_DATABASE_URL"
        raise DatabaseUnavailable(f"cannot reach PostgreSQL at {redact(url)} ({hint})") from exc


def redact(url: str) -> str:
    """Return a URL without its password."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}@{host}"


def os_user() -> str:
    """Return the name of the account the command runs under on this machine."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container with a numeric user)
        return f"uid-{os.getuid()}"


def staff(name: str, role: Role, *, default: str) -> Actor:
    """Return the system actor a command acts as: ``system:<os user>``, with ``:<name>`` when a job name is given.

    The machine account that ran the command is always named, so a change made from a shell is
    traced to a person or a scheduler's account; ``role`` is the role of the job it does.
    """
    label = name.strip()
    suffix = f":{label}" if label and label != default else ""
    return Actor(id=f"system:{os_user()}{suffix}", role=role, source=AuditSource.CLI)


def fail(exc: Exception) -> NoReturn:
    """Print a refused or failed action in one line and exit with status 1 (bad input exits with 2)."""
    typer.echo(f"error: {exc}", err=True)
    raise SystemExit(1) from exc
