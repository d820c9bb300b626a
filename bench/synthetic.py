"""An in-process feed: event documents at a fixed rate, published without a database write.

With it the hub, the framing, the per-subscriber buffers, the stream loop and uvicorn are
measured on their own: `create_app(settings, feed_factory=...)` puts it where the change
stream would be. Like the change-stream feed it publishes one document per call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from app.store.events import utc_now

if TYPE_CHECKING:
    from app.feeds.base import Publisher
    from app.store.codec import Document

logger = logging.getLogger(__name__)

# A token delta of a typical size: the frame on the wire is about 300 bytes.
DELTA = "The quick brown fox jumps over the lazy dog. "


def event_doc(session_id: str, seq: int) -> Document:
    """A stored event as the change stream would hand it over, stamped with the wall clock."""
    return {
        "event_id": f"syn.{session_id}.{seq}",
        "session_id": session_id,
        "seq": seq,
        "trace_id": None,
        "type": "message.delta",
        "data": {"sent_ns": time.time_ns(), "delta": DELTA},
        "timestamp": utc_now(),
    }


class Pacer:
    """Events due per tick to hold `rate` events/s. It catches up at most `max_lag` seconds,
    so an overloaded process offers less instead of bursting."""

    def __init__(self, rate: float, *, tick: float = 0.002, max_lag: float = 0.05) -> None:
        self.rate = rate
        self.tick = tick
        self.max_lag = max_lag

    async def ticks(self, duration: float) -> AsyncIterator[int]:
        start = last = time.monotonic()
        owed = 0.0
        while (now := time.monotonic()) < start + duration:
            owed = min(owed + (now - last) * self.rate, self.rate * self.max_lag + 1)
            last = now
            due = int(owed)
            owed -= due
            if due:
                yield due
            await asyncio.sleep(self.tick)


async def wait_for(check: Callable[[], int], expect: int, timeout: float) -> None:
    """Poll `check()` until it reaches `expect` or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while check() < expect and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


async def wait_settled(check: Callable[[], int], quiet: float, timeout: float) -> None:
    """Poll `check()` until it is above 0 and has not changed for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    last, since = check(), time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        now = check()
        if now != last:
            last, since = now, time.monotonic()
        elif now > 0 and time.monotonic() - since >= quiet:
            return


class SyntheticFeed:
    """Generates `rate` events/s, spread round-robin over the sessions that have subscribers.

    It starts once `expect` subscribers are connected (or after `start_timeout`; with `expect`
    below 0, once the number of subscribers has held still for a second: one of several
    processes cannot know how many clients it will get) and stops
    generating after `run_for` seconds. Each session's positions are dense and start after
    the hub's watermark (0 for the empty database the benchmark starts from).
    """

    mode = "synthetic"

    def __init__(
        self,
        publisher: Publisher,
        *,
        rate: float,
        expect: int = 0,
        run_for: float = 60.0,
        start_timeout: float = 120.0,
    ) -> None:
        self._publisher = publisher
        self._pacer = Pacer(rate)
        self._expect = expect
        self._run_for = run_for
        self._start_timeout = start_timeout
        self._running = False
        self.generated = 0

    @property
    def running(self) -> bool:
        return self._running

    async def run(self) -> None:
        self._running = True
        try:
            await self._generate()
        finally:
            self._running = False  # done, cancelled or crashed: /readyz says so

    async def _generate(self) -> None:
        hub = self._publisher.hub
        if self._expect < 0:
            await wait_settled(lambda: hub.subscribers, 1.0, self._start_timeout)
        else:
            await wait_for(lambda: hub.subscribers, self._expect, self._start_timeout)
        if self._pacer.rate <= 0:
            await asyncio.sleep(self._run_for)
            return
        logger.info(
            "synthetic feed: %s events/s to %d subscribers", self._pacer.rate, hub.subscribers
        )
        last: dict[str, int] = {}
        sessions: list[str] = []
        refreshed = 0.0
        turn = 0
        async for due in self._pacer.ticks(self._run_for):
            if time.monotonic() - refreshed > 0.1:
                sessions, refreshed = self._refresh(last), time.monotonic()
            if not sessions:
                continue
            for _ in range(due):
                session_id = sessions[turn % len(sessions)]
                turn += 1
                seq = last[session_id] = last[session_id] + 1
                self._publisher.publish([event_doc(session_id, seq)])
            self.generated += due

    def _refresh(self, last: dict[str, int]) -> list[str]:
        """The watched sessions; a session whose watermark moved (it was re-created) restarts
        from its watermark, since this feed is the only source of its events."""
        positions = self._publisher.hub.positions()
        for session_id, mark in positions.items():
            if last.get(session_id) != mark:
                last[session_id] = mark
        return list(positions)
