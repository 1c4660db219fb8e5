"""``make demo-check``: the newcomer's path, headless: ``make demo``, then every page as every role, then stop.

It runs ``make demo`` (a smaller seed, its own dashboard port) in the background, waits for the
dashboard's health endpoint, signs in through the dev login as each role in a real Chromium and
opens every page of that role's navigation. It fails on an exception or an error alert on any page,
on a traceback in the dashboard's log, and on a Feature flags page that does not list the seeded
flags in both environments. Then it stops what it started: the dashboard, and the embedded stack
(or the parts of it) that did not run before.

    python -m devstack.democheck --executions 50000 --days 7 --port 8599
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import PROJECT_ROOT, Settings, get_settings
from core.domain.models import Role
from core.flags.registry import REGISTRY
from devstack import processes
from devstack.prometheus import PrometheusServer
from devstack.stack import EmbeddedStack
from devstack.unleash import embedded_server

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ENVIRONMENTS = ("development", "production")
PAGE_TIMEOUT_MS = 60_000


class DemoCheckFailed(RuntimeError):
    """The demo did not come up, or a page showed an error."""


@dataclass
class Findings:
    """What the walk saw: pages opened per role, and every problem."""

    opened: dict[str, list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Running:
    """What of the embedded stack ran before the check, so it stops only what it started."""

    stack: bool
    unleash: bool
    prometheus: bool
    processes: frozenset[str]

    @classmethod
    def now(cls, settings: Settings) -> Running:
        """Record what runs now."""
        stack = EmbeddedStack(settings)
        return cls(
            stack=stack.is_up(),
            unleash=embedded_server(settings, stack.urls().database_url).pid() is not None,
            prometheus=PrometheusServer(settings).pid() is not None,
            processes=frozenset(p.name for p in stack.processes() if p.running),
        )


def stop_what_it_started(settings: Settings, before: Running) -> list[str]:
    """Stop the parts of the embedded stack that did not run before the check; return their names."""
    stack = EmbeddedStack(settings)
    if not before.stack:
        return stack.down()
    stopped = [p.name for p in processes.known(settings) if p.name not in before.processes and p.stop()]
    if not before.unleash and embedded_server(settings, stack.urls().database_url).down():
        stopped.append("unleash")
    if not before.prometheus and PrometheusServer(settings).down():
        stopped.append("prometheus")
    return stopped


def healthy(url: str) -> bool:
    """Tell whether the dashboard answers its health endpoint."""
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@contextmanager
def running_demo(args: argparse.Namespace, log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run ``make demo`` headless in the background, its output in ``log`` and on stdout; stop it at the end."""
    argv = [
        "make",
        "--no-print-directory",
        "demo",
        f"DEMO_EXECUTIONS={args.executions}",
        f"DEMO_DAYS={args.days}",
        f"DEMO_PORT={args.port}",
        "DEMO_ADDRESS=127.0.0.1",
        "DEMO_SEED_FLAGS=--no-progress",
    ]
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, STREAMLIT_SERVER_HEADLESS="true", STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert proc.stdout is not None
        pipe = proc.stdout

        def copy() -> None:
            for line in iter(pipe.readline, b""):
                out.write(line)
                out.flush()
                sys.stdout.write("  | " + line.decode(errors="replace"))
                sys.stdout.flush()

        copier = threading.Thread(target=copy, daemon=True)
        copier.start()
        try:
            yield f"http://127.0.0.1:{args.port}", proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)
            copier.join(10)


def wait_until_serving(url: str, proc: subprocess.Popen[bytes], timeout: float) -> float:
    """Wait for the dashboard's health endpoint; return the seconds it took, or raise when make gave up."""
    started = time.monotonic()
    while not healthy(url):
        if proc.poll() is not None:
            raise DemoCheckFailed(f"make demo exited with status {proc.returncode} before the dashboard served")
        if time.monotonic() - started > timeout:
            raise DemoCheckFailed(f"the dashboard did not answer {url}/_stcore/health within {timeout:.0f} s")
        time.sleep(0.5)
    return time.monotonic() - started


def log_in(page: Any, url: str, role: Role) -> None:
    """Sign in through the dev login form as a member of staff of ``role``."""
    page.goto(url)
    page.get_by_label("Your name").fill(f"check-{role.value}")
    page.get_by_test_id("stSelectbox").filter(has_text="Role").click()
    page.get_by_role("option").filter(has_text=re.compile(rf"^{re.escape(role.value)}:")).click()
    page.get_by_role("button", name="Log in").click()
    page.get_by_text(f"Signed in as check-{role.value}").wait_for()


def flags_problems(page: Any) -> list[str]:
    """Say what the Feature flags page lacks of the seeded flags in both environments (nothing when all is there).

    The table is drawn on a canvas; its accessible copy holds the header and the rows in view, so
    the count comes from the caption and the states from the rows the table shows.
    """
    seeded = set(REGISTRY)
    caption = page.get_by_text(re.compile(r"^\d+ of \d+ flags")).first
    try:
        caption.wait_for()
    except Exception:
        return ["no flags listed (no 'N of N flags' caption)"]
    text = caption.inner_text().strip()
    counted = re.match(r"(\d+) of (\d+) flags", text)
    if counted is None or int(counted.group(2)) < len(seeded):
        return [f"the page lists {text!r}; the seed has {len(seeded)} flags"]
    table = page.get_by_test_id("stDataFrame").first
    table.locator("th").first.wait_for(state="attached")
    table.locator("td").first.wait_for(state="attached")
    header = [cell.strip() for cell in table.locator("th").all_inner_texts()]
    missing = [env for env in ENVIRONMENTS if env not in header]
    if missing:
        return [f"no {env} column (columns: {header})" for env in missing]
    cells = [cell.strip() for cell in table.locator("td").all_inner_texts()]
    rows = [dict(zip(header, cells[i : i + len(header)], strict=False)) for i in range(0, len(cells), len(header))]
    problems = [f"{row.get('Flag')!r} is not a seeded flag" for row in rows if row.get("Flag") not in seeded]
    for row in rows:
        for env in ENVIRONMENTS:
            if not re.fullmatch(r"(on|off)( \d+ %)?", row.get(env, "")):
                problems.append(f"{row.get('Flag')} has no state in {env} ({row.get(env)!r})")
    return problems if rows else ["the table shows no row"]


def walk(url: str, shots: Path, chromium: Path) -> Findings:
    """Open every page of the navigation as every role; return what was opened and every problem seen."""
    from playwright.sync_api import sync_playwright

    findings = Findings()
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            for role in Role:
                context = browser.new_context(viewport={"width": 1440, "height": 1400})
                page = context.new_page()
                page.set_default_timeout(PAGE_TIMEOUT_MS)
                try:
                    log_in(page, url, role)
                    links = page.get_by_test_id("stSidebarNav").get_by_role("link")
                    # A link's text is its Material icon's name, then its title.
                    titles = [text.strip().splitlines()[-1].strip() for text in links.all_inner_texts()]
                    findings.opened[role.value] = titles
                    for index, title in enumerate(titles):
                        problems = open_page(page, links.nth(index), title)
                        if title == "Feature flags":
                            problems += flags_problems(page)
                        if problems:
                            findings.problems += [f"{role.value} / {title}: {p}" for p in problems]
                            page.screenshot(path=str(shots / f"{role.value}-{title}.png"), full_page=True)
                except Exception as exc:
                    findings.problems.append(f"{role.value}: {type(exc).__name__}: {exc}")
                    page.screenshot(path=str(shots / f"{role.value}-failed.png"), full_page=True)
                finally:
                    context.close()
        finally:
            browser.close()
    return findings


def open_page(page: Any, link: Any, title: str) -> list[str]:
    """Open one page from the navigation, let its run finish and return its exceptions and error alerts."""
    link.click()
    page.get_by_role("heading", name=title, exact=True).first.wait_for()
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden")
    problems = [f"exception: {t.strip()[:300]}" for t in page.get_by_test_id("stException").all_inner_texts()]
    problems += [f"error: {t.strip()[:300]}" for t in page.get_by_test_id("stAlertContentError").all_inner_texts()]
    return problems


def main(argv: list[str] | None = None) -> int:
    """Run the check; exit 0 when every page rendered cleanly as every role."""
    parser = argparse.ArgumentParser(
        prog="python -m devstack.democheck", description="Run make demo headless; walk every page as every role."
    )
    parser.add_argument("--executions", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--port", type=int, default=8599)
    parser.add_argument("--timeout", type=float, default=900.0, help="Seconds make demo may take to serve.")
    args = parser.parse_args(argv)
    settings = get_settings()
    if not settings.embedded:
        print("demo-check runs the embedded demo: unset KROWOC_DATABASE_URL and KROWOC_REDIS_URL.", file=sys.stderr)
        return 2
    if not settings.chromium_path.exists():
        print(f"demo-check needs Chromium at {settings.chromium_path}: apt-get install chromium.", file=sys.stderr)
        return 2
    folder = processes.logs_dir(settings) / "demo-check"
    log = folder / "make-demo.log"
    before = Running.now(settings)
    started = time.monotonic()
    failed: str | None = None
    findings = Findings()
    try:
        with running_demo(args, log) as (url, proc):
            seconds = wait_until_serving(url, proc, args.timeout)
            print(f"demo-check: the dashboard served at {url} after {seconds:.1f} s")
            findings = walk(url, folder, settings.chromium_path)
            if proc.poll() is not None:
                findings.problems.append(f"make demo exited with status {proc.returncode} during the walk")
    except DemoCheckFailed as exc:
        failed = str(exc)
    finally:
        for process in EmbeddedStack(settings).processes():
            state = f"running (pid {process.pid})" if process.running else "not running"
            print(f"demo-check: {process.name} {state} before the stop")
        stopped = stop_what_it_started(settings, before)
        print(f"demo-check: stopped {', '.join(stopped) if stopped else 'nothing else'} (what it started)")
    text = log.read_text(errors="replace") if log.exists() else ""
    if "Traceback (most recent call last)" in text:
        findings.problems.append(f"a traceback in the output of make demo ({log})")
    for role, titles in findings.opened.items():
        print(f"demo-check: {role:<9} opened {len(titles)} pages: {', '.join(titles)}")
    if failed or findings.problems or not findings.opened:
        print(f"demo-check FAILED after {time.monotonic() - started:.0f} s:", file=sys.stderr)
        for problem in [failed, *findings.problems] if failed else findings.problems or ["no page was opened"]:
            print(f"  - {problem}", file=sys.stderr)
        print(f"  make demo's output: {log}; screenshots: {folder}", file=sys.stderr)
        return 1
    print(f"demo-check passed in {time.monotonic() - started:.0f} s: every page as every role, no error.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
