"""The embedded OpenID provider: npm's ``oidc-provider`` (pinned in devstack/node's lockfile) under the stack.

The package is installed with Unleash by ``npm ci`` (``devstack.node``). Its start script,
``devstack/node/oidc-provider.mjs`` (demo staff accounts, PKCE, key rotation, introspection), belongs
to the access work and is not written yet: until it exists, ``stack up`` says so in its line and
starts the rest. Once it exists, ``stack up`` runs it on the stack's Node, pid-tracked like the
stack's other processes (``devstack.processes``), on 127.0.0.1:``OIDC_PORT``, and ``stack down``
stops it.
"""

from __future__ import annotations

import os
import shutil

from core.config import Settings
from devstack import node as stack_node
from devstack.network import port_taken
from devstack.processes import StackProcess

START_SCRIPT = stack_node.PACKAGE_DIR / "oidc-provider.mjs"
"""The provider's start script: the place the access work fills in."""
PROCESS_NAME = "oidc-provider"
OIDC_PORT = 44243


def provider_process(settings: Settings) -> StackProcess:
    """Return the stack's record of the OpenID provider's process."""
    return StackProcess(settings, PROCESS_NAME)


def start_embedded(settings: Settings) -> str:
    """Start the OpenID provider when its start script exists; return a line saying where it runs or why not."""
    if not START_SCRIPT.is_file():
        return f"not started: its start script devstack/node/{START_SCRIPT.name} is not written yet (access work)"
    process = provider_process(settings)
    url = f"http://127.0.0.1:{OIDC_PORT}"
    if process.pid() is None and port_taken(OIDC_PORT):
        return f"not started: port {OIDC_PORT} on 127.0.0.1 is taken by a server this stack did not start"
    packages = stack_node.NodePackages(settings)
    try:
        runtime = packages.ensure()
    except stack_node.NodeError as exc:
        return f"not started: {exc}"
    # A module resolves its imports from its own folder: the script runs beside the installed node_modules.
    script = packages.root / START_SCRIPT.name
    shutil.copyfile(START_SCRIPT, script)
    env = runtime.env(os.environ)
    env.update({"HOST": "127.0.0.1", "PORT": str(OIDC_PORT), "ISSUER": url})
    pid = process.start([str(runtime.node), str(script)], env=env)
    return f"{url} (pid {pid}, log {process.log})"
