"""Waiting for a condition instead of sleeping for a guessed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def eventually(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Return as soon as `condition()` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"still false after {timeout} s: {condition}"
        await asyncio.sleep(0.005)


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """`eventually` for synchronous tests."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"still false after {timeout} s: {condition}"
        time.sleep(0.01)
