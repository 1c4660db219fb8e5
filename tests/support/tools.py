"""Tests that need a program the machine may lack skip saying how to install it; in CI they fail instead."""

from __future__ import annotations

import shutil

import pytest

from core.config import get_settings


def require_tool(available: bool, what: str, install: str) -> None:
    """Skip the test when a tool is missing, saying how to install it; in CI that is a failure."""
    if available:
        return
    message = f"{what} is not available: {install}"
    if get_settings().require_all_tools:
        pytest.fail(message + " (KROWOC_REQUIRE_ALL_TOOLS is set, so nothing may skip)")
    pytest.skip(message)


def require_binary(name: str, install: str) -> str:
    """Return the path of a program on PATH, or skip (fail in CI) saying how to install it."""
    path = shutil.which(name)
    require_tool(path is not None, name, install)
    assert path is not None
    return path
