"""The dashboard process freezes its start-up heap so full collections skip it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from core.adapters.runtime import freeze_startup_heap


@pytest.fixture
def unfrozen_afterwards() -> Iterator[None]:
    yield
    gc.unfreeze()


def _tracked(obj: object) -> bool:
    return any(candidate is obj for candidate in gc.get_objects())


def test_objects_alive_at_the_freeze_leave_the_collectors_generations(unfrozen_afterwards: None) -> None:
    long_lived = {"services": ["built", "at", "start-up"]}
    assert _tracked(long_lived)

    frozen = freeze_startup_heap()

    assert frozen >= 1
    assert not _tracked(long_lived)
    made_later = [long_lived]
    assert _tracked(made_later), "objects made after the freeze are still collected"
