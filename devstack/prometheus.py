"""Debian's ``prometheus`` for the embedded default: started by ``krowoc-admin stack up`` when installed.

It listens on 127.0.0.1 only, keeps its data under ``state_dir/prometheus``, scrapes the traffic
simulator with ``deploy/prometheus/prometheus.yml`` and evaluates its alerting rules. ``down``
stops only the server ``up`` started (its pid file names a process whose command line holds our
storage folder); a Prometheus this stack did not start is never touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil

from core.config import PROJECT_ROOT, Settings
from devstack.network import port_taken

CONFIG = PROJECT_ROOT / "deploy" / "prometheus" / "prometheus.yml"
INSTALL_HINT = "get it with `apt-get install prometheus` (Debian's package), then `krowoc-admin stack up`"


@dataclass(frozen=True)
class PrometheusStatus:
    running: bool
    url: str
    pid: int | None
    detail: str = ""


class PrometheusServer:
    """Starts, stops and reports on the embedded default's Prometheus."""

    def __init__(
        self, settings: Settings, *, port: int = 9090, config: Path = CONFIG, root: Path | None = None
    ) -> None:
        self.settings = settings
        self.port = port
        self.config = config
        self.root = root or settings.state_dir / "prometheus"
        self.data = self.root / "data"
        self.pidfile = self.root / "prometheus.pid"
        self.log = self.root / "prometheus.log"

    @property
    def url(self) -> str:
        """The URL it answers on."""
        return f"http://127.0.0.1:{self.port}"

    @staticmethod
    def binary() -> str | None:
        """Return the path of Debian's prometheus, or None when it is not installed."""
        return shutil.which("prometheus")

    def pid(self) -> int | None:
        """Return the pid of the server this stack started, or None when it does not run."""
        try:
            pid = int(self.pidfile.read_text().strip())
            proc = psutil.Process(pid)
            ours = str(self.data) in " ".join(proc.cmdline())
        except (OSError, ValueError, psutil.Error):
            return None
        return pid if ours and proc.status() != psutil.STATUS_ZOMBIE else None

    def status(self) -> PrometheusStatus:
        """Report whether our Prometheus runs."""
        pid = self.pid()
        return PrometheusStatus(pid is not None, self.url, pid, str(self.data))

    def up(self, *, timeout: float = 30.0) -> str | None:
        """Start Prometheus when it is installed and not running; return why not when it is not started."""
        binary = self.binary()
        if binary is None:
            return f"not installed, so the live panels say 'not configured': {INSTALL_HINT}."
        if self.pid() is not None:
            return None
        if port_taken(self.port):
            return (
                f"Port {self.port} on 127.0.0.1 is taken by a server this stack did not start; Prometheus not started."
            )
        self.data.mkdir(parents=True, exist_ok=True)
        argv = [
            binary,
            f"--config.file={self.config}",
            f"--storage.tsdb.path={self.data}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=7d",
            "--web.enable-lifecycle",
        ]
        with self.log.open("ab") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        self.pidfile.write_text(f"{proc.pid}\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if port_taken(self.port) and self.ready():
                return None
            if proc.poll() is not None:
                return f"Prometheus exited with status {proc.returncode}; see {self.log}."
            time.sleep(0.1)
        return f"Prometheus did not open port {self.port} within {timeout:.0f} s; see {self.log}."

    def ready(self) -> bool:
        """Tell whether Prometheus answers its readiness check."""
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def down(self) -> bool:
        """Stop the Prometheus this stack started; return whether one was stopped."""
        pid = self.pid()
        if pid is None:
            self.pidfile.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        try:
            psutil.Process(pid).wait(15)
        except psutil.NoSuchProcess:
            pass
        except psutil.TimeoutExpired:
            os.kill(pid, signal.SIGKILL)
        self.pidfile.unlink(missing_ok=True)
        return True


def start_embedded(settings: Settings) -> str:
    """Start the embedded Prometheus if it can be; return a line saying where it runs or why it does not."""
    server = PrometheusServer(settings)
    problem = server.up()
    return problem or f"{server.url} (scraping the simulator on 127.0.0.1:9464; `krowoc-admin simulate`)"
