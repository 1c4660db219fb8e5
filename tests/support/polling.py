"""Waiting for something that happens on another thread, process or server, without fixed sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable


def eventually(
    predicate: Callable[[], bool],
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    ignoring: tuple[type[BaseException], ...] = (),
) -> bool:
    """Return True as soon as ``predicate()`` holds, False once ``timeout`` seconds have passed.

    ``ignoring`` names the errors that count as "not yet" (a server still starting, say).
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return True
        except ignoring:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def wait_for(
    predicate: Callable[[], bool],
    what: str,
    *,
    timeout: float = 10.0,
    interval: float = 0.05,
    ignoring: tuple[type[BaseException], ...] = (),
) -> None:
    """Wait until ``predicate()`` holds; fail the test saying ``what`` did not happen within ``timeout``."""
    if not eventually(predicate, timeout=timeout, interval=interval, ignoring=ignoring):
        raise AssertionError(f"{what} within {timeout:.0f} s")
