"""Waiting for state that has no event to wait on: poll a condition to a deadline.

The only place in the tests that polls; everything else awaits an event with a timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def eventually_async(
    predicate: Callable[[], Awaitable[bool]],
    timeout: float = 10.0,
    what: str = "",
    interval: float = 0.01,
) -> None:
    """Return once `predicate()` is true; fail with AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(interval)


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """`eventually_async` for a condition that needs no I/O to check."""

    async def check() -> bool:
        return predicate()

    await eventually_async(check, timeout, what)


def eventually_sync(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """`eventually` for synchronous tests (a subprocess coming up, say)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.05)
