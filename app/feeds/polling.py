"""The polling feed: one query per interval for every watched session together."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from pymongo.errors import PyMongoError

if TYPE_CHECKING:
    from app.feeds.base import Publisher

logger = logging.getLogger(__name__)


class PollingFeed:
    mode = "poll"

    def __init__(self, publisher: Publisher, *, interval: float, gap_timeout: float) -> None:
        self._publisher = publisher
        self._interval = interval
        self._gap_timeout = gap_timeout
        self._running = False

    @property
    def running(self) -> bool:
        return self._running

    async def run(self) -> None:
        try:
            await self._loop()
        finally:
            self._running = False  # cancelled, or crashed: /readyz reports it either way

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
