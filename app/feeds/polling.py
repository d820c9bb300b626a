"""The polling feed: one query per interval for every watched session together."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from pymongo.errors import PyMongoError

from app.feeds.base import FeedLoop

if TYPE_CHECKING:
    from app.feeds.base import Publisher

logger = logging.getLogger(__name__)


class PollingFeed(FeedLoop):
    mode = "poll"

    def __init__(self, publisher: Publisher, *, interval: float, gap_timeout: float) -> None:
        super().__init__()
        self._publisher = publisher
        self._interval = interval
        self._gap_timeout = gap_timeout

    async def _loop(self) -> None:
        failures = 0
        while True:
            try:
                await self._publisher.read_forward()
                await self._publisher.fill_holes(self._gap_timeout)
            except PyMongoError as exc:
                failures += 1
                self._running = False
                logger.warning("poll failed (%d in a row): %s", failures, exc)
            else:
                if not self._running:
                    logger.info("polling feed running every %gs", self._interval)
                failures = 0
                self._running = True
            await asyncio.sleep(self._interval if failures == 0 else min(5.0, failures * 0.5))
