"""Background processes the embedded stack runs for the demo: pid-tracked, logged, stopped by ``stack down``.

Each process has a name; its pid file ``state_dir/run/<name>.json`` records the pid, the start time
the kernel gives that pid and the command line, and its output goes to ``state_dir/logs/<name>.log``.
A pid file names a process of ours only while a process with that pid, that start time and that
command line exists, so a stale file never makes another process ours. Processes start in a
session of their own: Ctrl-C in the terminal that started them does not stop them, ``stack down``
does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from core.config import PROJECT_ROOT, Settings

STOP_SECONDS = 20.0


@dataclass(frozen=True)
class ProcessStatus:
    """Whether a background process of the stack runs, with its pid and log."""

    name: str
    running: bool
    pid: int | None
    log: Path


class StackProcess:
    """One named background process of the embedded stack."""

    def __init__(self, settings: Settings, name: str) -> None:
        self.name = name
        self.pidfile = run_dir(settings) / f"{name}.json"
        self.log = logs_dir(settings) / f"{name}.log"

    def pid(self) -> int | None:
        """Return the pid of the process this name started when it still runs, else None."""
        try:
            recorded = json.loads(self.pidfile.read_text())
            pid, started, argv = int(recorded["pid"]), float(recorded["started"]), list(recorded["argv"])
            proc = psutil.Process(pid)
            # A process caught in the middle of its exec shows no command line yet.
            ours = abs(proc.create_time() - started) < 0.5 and proc.cmdline() in (argv, [])
            running = proc.status() != psutil.STATUS_ZOMBIE
        except (OSError, ValueError, KeyError, TypeError, psutil.Error):
            return None
        return pid if ours and running else None

    def status(self) -> ProcessStatus:
        """Report whether the process runs."""
        pid = self.pid()
        return ProcessStatus(self.name, pid is not None, pid, self.log)

    def start(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> int:
        """Start ``argv`` unless this name runs already; return its pid."""
        running = self.pid()
        if running is not None:
            return running
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            proc = subprocess.Popen(
                list(argv),
                cwd=PROJECT_ROOT,
                env=dict(env if env is not None else os.environ),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        # The command line is recorded as given (what the kernel shows once exec is done): read back
        # right after the start, /proc may still show an empty one (the pipe that tells Popen the
        # exec succeeded closes before the kernel has copied the new arguments).
        try:
            started = psutil.Process(proc.pid).create_time()
        except psutil.Error:
            started = time.time()
        record = {"pid": proc.pid, "started": started, "argv": list(argv)}
        self.pidfile.write_text(json.dumps(record) + "\n")
        return proc.pid

    def stop(self, timeout: float = STOP_SECONDS) -> bool:
        """Stop the process (SIGTERM, then SIGKILL after ``timeout``); return whether one was running."""
        pid = self.pid()
        self.pidfile.unlink(missing_ok=True)
        if pid is None:
            return False
        try:
            os.kill(pid, signal.SIGTERM)
            psutil.Process(pid).wait(timeout)
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
        except psutil.TimeoutExpired:
            os.kill(pid, signal.SIGKILL)
        return True


def run_dir(settings: Settings) -> Path:
    """Return the folder of the stack's process records."""
    return settings.state_dir / "run"


def logs_dir(settings: Settings) -> Path:
    """Return the folder of the stack's process logs."""
    return settings.state_dir / "logs"


def known(settings: Settings) -> list[StackProcess]:
    """Return every background process the stack has a record of, by name."""
    folder = run_dir(settings)
    names = sorted(path.stem for path in folder.glob("*.json")) if folder.is_dir() else []
    return [StackProcess(settings, name) for name in names]


def stop_all(settings: Settings) -> list[str]:
    """Stop every background process the stack started; return the names of those that ran."""
    return [process.name for process in known(settings) if process.stop()]
