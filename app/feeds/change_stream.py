"""The change-stream feed: one watch() on the events collection for the whole process."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from pymongo.errors import OperationFailure, PyMongoError

from app.feeds.base import FeedLoop

if TYPE_CHECKING:
    from collections.abc import Mapping

    from pymongo.asynchronous.collection import AsyncCollection

    from app.feeds.base import Publisher
    from app.store.codec import Document

logger = logging.getLogger(__name__)

HISTORY_LOST = 286
FATAL = 280
PIPELINE = [{"$match": {"operationType": {"$in": ["insert", "invalidate"]}}}]


class _Invalidated(Exception):
    pass


class ChangeStreamFeed(FeedLoop):
    mode = "change_stream"

    def __init__(
        self,
        events: AsyncCollection[Document],
        publisher: Publisher,
        *,
        gap_timeout: float,
        max_await: float = 0.5,
    ) -> None:
        super().__init__()
        self._events = events
        self._publisher = publisher
        self._gap_timeout = gap_timeout
        self._max_await_ms = int(max_await * 1000)
        self._token: Mapping[str, Any] | None = None

    async def _loop(self) -> None:
        catch_up = False
        failures = 0
        while True:
            try:
                await self._follow(catch_up)
            except _Invalidated:
                self._lost("invalidate")
                catch_up = True
            except OperationFailure as exc:
                if exc.code not in (HISTORY_LOST, FATAL):
                    failures = await self._failed(exc, failures)
                    continue
                self._lost("history_lost")
                catch_up = True
            except PyMongoError as exc:
                failures = await self._failed(exc, failures)
                continue
            failures = 0

    def _lost(self, reason: str) -> None:
        logger.warning("change stream lost its position (%s); reopening and catching up", reason)
        self._publisher.metrics.change_stream_resumes.labels(reason).inc()
        self._token = None
        self._running = False

    async def _failed(self, exc: PyMongoError, failures: int) -> int:
        if self._running:  # the stream was open until now: a new outage starts counting at 1
            failures = 0
        self._running = False
        self._publisher.metrics.change_stream_resumes.labels("error").inc()
        logger.warning("change stream failed (%d in a row), resuming: %s", failures + 1, exc)
        await asyncio.sleep(min(5.0, 0.1 * 2**failures))
        return failures + 1

    async def _follow(self, catch_up: bool) -> None:
        stream = await self._events.watch(
            PIPELINE, resume_after=self._token, max_await_time_ms=self._max_await_ms
        )
        async with stream:
            self._running = True
            if catch_up:
                # The stream is open, so everything after this read is in it as well.
                await self._publisher.read_forward()
            checked = time.monotonic()
            while True:
                change = await stream.try_next()
                self._token = stream.resume_token
                if change is not None:
                    if change["operationType"] == "invalidate":
                        raise _Invalidated
                    self._publisher.publish([change["fullDocument"]])
                if change is None or time.monotonic() - checked >= self._gap_timeout / 2:
                    # Idle, or busy for a while: read or void positions that never arrived.
                    await self._publisher.fill_holes(self._gap_timeout)
                    checked = time.monotonic()
