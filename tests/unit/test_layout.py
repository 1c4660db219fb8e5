"""The layout keeps ``core`` importable by the platform's API without the dev stack or its heavy tools."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.settings import PROJECT_ROOT

LOADED = """
import json, sys
import {module}
print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}})))
"""


def _top_level_modules_after(module: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", LOADED.format(module=module)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(json.loads(done.stdout))


def test_importing_the_composition_root_loads_no_dev_stack_cli_or_heavy_tool() -> None:
    loaded = _top_level_modules_after("core.bootstrap")
    assert "core" in loaded and "sqlalchemy" in loaded and "redis" in loaded  # it did import something real
    assert loaded.isdisjoint({"devstack", "cli", "dashboard", "pages", "queries", "streamlit"})
    assert loaded.isdisjoint({"typer", "pyarrow", "psutil", "pandas", "tqdm"})


def test_the_command_line_still_loads_the_dev_stack_it_drives() -> None:
    loaded = _top_level_modules_after("cli.main")
    assert {"devstack", "typer", "psutil"} <= loaded
