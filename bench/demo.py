"""The newcomer's benchmark: ``make demo`` on a clean copy of the tree, to a serving dashboard, and its memory.

    python -m bench.demo --write          # --clone /tmp/krowoc-demo-bench --port 8501

It copies the working tree (without .venv, .krowoc and caches) into ``--clone`` and there times
``make demo`` until the dashboard answers ``/_stcore/health``:

- first run: the venv created, every Python package and the Node packages downloaded (pip without its
  cache, npm with an empty cache), PostgreSQL initialised, Unleash's tables and flags, the seed;
- second run: ``make demo`` again after Ctrl-C (the stack and the live traffic still run);
- second start: ``make demo`` after ``make stack-down`` (every server starts again; nothing to install
  or seed).

Then it sums the memory of the whole stack (RSS, and PSS, which counts PostgreSQL's shared buffers
once): PostgreSQL, Valkey, the Node processes, the simulator, the two refreshers and Streamlit,
with Prometheus beside them, idle twice: with no browser session, and with one Chromium session
left open on the Overview (Streamlit loads the pages' libraries only for a session). It stops everything
it started at the end. The embedded stack's ports (54329, 63799, 44242, 9090, 9464) must be free.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psutil

from bench.harness import Figure, Section, machine, write_part
from core.config import PROJECT_ROOT

SERVE_GOAL_S = 30.0
MEMORY_GOAL_MIB = 1536.0
EXCLUDED = [".venv", ".krowoc", ".git", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".import_linter_cache",
            "__pycache__", "*.egg-info", "bench/out"]  # fmt: skip


def copy_tree(clone: Path) -> None:
    """Copy the working tree, without its local state, into a fresh folder."""
    if clone.exists():
        shutil.rmtree(clone)
    ignore = shutil.ignore_patterns(*[Path(p).name for p in EXCLUDED])
    shutil.copytree(PROJECT_ROOT, clone, ignore=ignore, symlinks=True)


def healthy(port: int) -> bool:
    """Tell whether the dashboard answers its health endpoint."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@dataclass
class Demo:
    """One ``make demo`` in the clone, in its own process group."""

    proc: subprocess.Popen[bytes]
    seconds: float


def run_demo(clone: Path, port: int, env: dict[str, str], log: Path, timeout: float = 1800) -> Demo:
    """Start ``make demo`` and return once the dashboard serves, with the seconds it took."""
    started = time.monotonic()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            ["make", "--no-print-directory", "demo", f"DEMO_PORT={port}", "DEMO_SEED_FLAGS=--no-progress"],
            cwd=clone, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    while not healthy(port):
        if proc.poll() is not None:
            raise RuntimeError(f"make demo exited with status {proc.returncode}; see {log}")
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"make demo did not serve within {timeout:.0f} s; see {log}")
        time.sleep(0.2)
    return Demo(proc, time.monotonic() - started)


def stop_dashboard(demo: Demo) -> None:
    """Stop the dashboard as Ctrl-C would (the stack and its processes keep running)."""
    os.killpg(demo.proc.pid, signal.SIGINT)
    try:
        demo.proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(demo.proc.pid, signal.SIGKILL)
        demo.proc.wait(10)


def _tree(pid: int | None) -> list[psutil.Process]:
    if pid is None:
        return []
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def stack_pids(clone: Path, streamlit: int) -> dict[str, list[psutil.Process]]:
    """Return the processes of the clone's stack, by part."""
    state = clone / ".krowoc"
    parts: dict[str, list[psutil.Process]] = {}
    postmaster = (state / "postgres" / "data" / "postmaster.pid").read_text().split()[0]
    parts["PostgreSQL"] = _tree(int(postmaster))
    parts["Valkey"] = _tree(int((state / "valkey" / "valkey.pid").read_text()))
    parts["Unleash (Node)"] = _tree(int((state / "unleash" / "unleash.pid").read_text()))
    for record in sorted((state / "run").glob("*.json")):
        parts[record.stem] = _tree(int(json.loads(record.read_text())["pid"]))
    parts["Streamlit"] = _tree(streamlit)
    prometheus = state / "prometheus" / "prometheus.pid"
    if prometheus.exists():
        parts["Prometheus"] = _tree(int(prometheus.read_text()))
    return parts


def memory(parts: dict[str, list[psutil.Process]]) -> dict[str, tuple[float, float]]:
    """Return each part's RSS and PSS in MiB."""
    sizes: dict[str, tuple[float, float]] = {}
    for name, procs in parts.items():
        rss = pss = 0
        for proc in procs:
            try:
                info = proc.memory_full_info()
            except psutil.Error:
                continue
            rss, pss = rss + info.rss, pss + info.pss
        sizes[name] = (rss / 2**20, pss / 2**20)
    return sizes


def streamlit_pid(demo: Demo) -> int:
    """Return the pid of the Streamlit server make demo runs."""
    for proc in _tree(demo.proc.pid):
        try:
            if "streamlit" in " ".join(proc.cmdline()):
                return proc.pid
        except psutil.Error:
            continue
    raise RuntimeError("no Streamlit process under make demo")


@contextmanager
def overview_open(port: int) -> Iterator[None]:
    """Keep one Chromium session open on the Overview, signed in as a viewer, for the block."""
    from playwright.sync_api import sync_playwright

    from core.config import get_settings
    from core.domain.models import Role
    from devstack.democheck import CHROMIUM_ARGS, log_in

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(get_settings().chromium_path), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.set_default_timeout(60_000)
            log_in(page, f"http://127.0.0.1:{port}", Role.VIEWER)
            page.get_by_role("heading", name="Overview", exact=True).first.wait_for()
            page.get_by_test_id("stStatusWidget").wait_for(state="hidden")
            yield
        finally:
            browser.close()


def add_memory(section: Section, when: str, sizes: dict[str, tuple[float, float]]) -> None:
    """Add each part's memory and the whole stack's, with and without Prometheus."""
    for name, (rss, pss) in sizes.items():
        section.add(Figure(f"idle, {when}: {name} (PSS; RSS {rss:,.0f} MiB)", pss, "MiB"))
    whole = {k: v for k, v in sizes.items() if k != "Prometheus"}
    rss_total, pss_total = sum(v[0] for v in whole.values()), sum(v[1] for v in whole.values())
    section.add(
        Figure(f"idle, {when}: whole stack without Prometheus (RSS)", rss_total, "MiB",
               f"goal <= {MEMORY_GOAL_MIB:,.0f} MiB", rss_total <= MEMORY_GOAL_MIB)
    )  # fmt: skip
    section.add(Figure(f"idle, {when}: whole stack without Prometheus (PSS)", pss_total, "MiB"))
    with_prometheus = rss_total + sizes.get("Prometheus", (0.0, 0.0))[0]
    section.add(
        Figure(f"idle, {when}: whole stack with Prometheus (RSS)", with_prometheus, "MiB",
               f"goal <= {MEMORY_GOAL_MIB:,.0f} MiB", with_prometheus <= MEMORY_GOAL_MIB)
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clone", type=Path, default=Path("/tmp/krowoc-demo-bench"))
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of idle before the memory is read")
    parser.add_argument("--write", action="store_true", help="also write the figures into bench/RESULTS.md")
    args = parser.parse_args(argv)
    clone: Path = args.clone
    print(f"Copying the tree into {clone}", flush=True)
    copy_tree(clone)
    log = clone / "bench-demo.log"
    fresh = {"PIP_NO_CACHE_DIR": "1", "npm_config_cache": str(clone / ".npm-cache-empty")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("KROWOC_")}
    section = Section("make demo")
    demo: Demo | None = None
    try:
        demo = run_demo(clone, args.port, {**env, **fresh}, log)
        section.add(Figure("first run, to a serving dashboard (downloads included)", demo.seconds, "s"))
        stop_dashboard(demo)
        demo = run_demo(clone, args.port, env, log)
        second = section.add(
            Figure("second run (stack still up), to a serving dashboard", demo.seconds, "s",
                   f"goal <= {SERVE_GOAL_S:.0f} s", demo.seconds <= SERVE_GOAL_S)
        )  # fmt: skip
        stop_dashboard(demo)
        subprocess.run(["make", "--no-print-directory", "stack-down"], cwd=clone, env=env, check=True)
        demo = run_demo(clone, args.port, env, log)
        section.add(
            Figure("second start after make stack-down, to a serving dashboard", demo.seconds, "s",
                   f"goal <= {SERVE_GOAL_S:.0f} s", demo.seconds <= SERVE_GOAL_S)
        )  # fmt: skip
        time.sleep(args.idle)
        add_memory(section, "no session", memory(stack_pids(clone, streamlit_pid(demo))))
        with overview_open(args.port):
            time.sleep(args.idle)
            add_memory(section, "Overview open", memory(stack_pids(clone, streamlit_pid(demo))))
    finally:
        if demo is not None and demo.proc.poll() is None:
            stop_dashboard(demo)
        subprocess.run(["make", "--no-print-directory", "stack-down"], cwd=clone, env=env, check=False)
    if args.write:
        write_part(
            "demo",
            [
                "## make demo on a clean copy of the tree",
                "",
                f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}. Default sizes (1,000,000 "
                "executions over 30 days, 0.5 executions per second live); Debian's prometheus installed. "
                "The first run creates the venv and downloads every package (pip without its cache, npm with "
                "an empty cache); memory is read after "
                f"{args.idle:.0f} s idle with no browser session, then after {args.idle:.0f} s more with one "
                "Chromium session open on the Overview. RSS counts PostgreSQL's shared buffers in every "
                "process that touched them; PSS counts them once. Other work ran on the machine meanwhile.",
                "",
                "Command: `python -m bench.demo --write`",
                "",
                *section.table(digits=1),
            ],
        )
    return 0 if second.met else 1


if __name__ == "__main__":
    raise SystemExit(main())
