"""Realistic seed data for the demo, the tests and the benchmark: a platform drawn from a seed and loaded with COPY.

The generator and the loader bring numpy, pyarrow and pandas; they are imported on first use, so
that what needs only the traffic profiles (the simulator, every other command) stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devstack.seed.generator import PlatformGenerator, SeedOptions
    from devstack.seed.loader import SeedRefused, SeedReport, hour_aligned_chunks, is_seeded, seed

_WHERE = {
    "PlatformGenerator": "devstack.seed.generator",
    "SeedOptions": "devstack.seed.generator",
    "SeedRefused": "devstack.seed.loader",
    "SeedReport": "devstack.seed.loader",
    "hour_aligned_chunks": "devstack.seed.loader",
    "is_seeded": "devstack.seed.loader",
    "seed": "devstack.seed.loader",
}

__all__ = ["PlatformGenerator", "SeedOptions", "SeedRefused", "SeedReport", "hour_aligned_chunks", "is_seeded", "seed"]


def __getattr__(name: str) -> Any:
    """Import the generator or the loader when one of their names is first asked for."""
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
