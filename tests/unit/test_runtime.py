"""The dashboard process freezes its start-up heap so full collections skip it.

The freeze runs in a child process: frozen objects are never freed by the collector, so freezing
the test run's own heap would change every test after this one.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.settings import PROJECT_ROOT

CHILD = """
import gc, json
from core.adapters.runtime import freeze_startup_heap

def tracked(obj):
    return any(candidate is obj for candidate in gc.get_objects())

long_lived = {"services": ["built", "at", "start-up"]}
before = tracked(long_lived)
frozen = freeze_startup_heap()
after = tracked(long_lived)
made_later = [long_lived]
print(json.dumps({"before": before, "frozen": frozen, "after": after, "later": tracked(made_later),
                  "count": gc.get_freeze_count()}))
"""


def test_objects_alive_at_the_freeze_leave_the_collectors_generations() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    seen = json.loads(done.stdout)

    assert seen["before"], "a live object is tracked by the collector before the freeze"
    assert seen["frozen"] >= 1 and seen["count"] == seen["frozen"]
    assert not seen["after"], "an object alive at the freeze leaves the collector's generations"
    assert seen["later"], "objects made after the freeze are still collected"
