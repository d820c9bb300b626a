"""Periodic gauges that would be too costly per scrape: collection sizes and the queue length."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from app.metrics import Metrics
    from app.mongo import Collections

logger = logging.getLogger(__name__)

COLLECTIONS = ("events", "messages", "runs")


class Monitor:
    def __init__(
        self,
        collections: Collections,
        redis: Redis,
        metrics: Metrics,
        *,
        queue_name: str,
        interval: float = 30.0,
    ) -> None:
        self._collections = collections
        self._redis = redis
        self._metrics = metrics
        self._queue_name = queue_name
        self._interval = interval

    async def refresh(self) -> None:
        """collStats of each collection, and ZCARD of the ARQ queue."""
        for name in COLLECTIONS:
            stats = await self._collections.db.command("collStats", name)
            self._metrics.collection_size.labels(name).set(float(stats.get("size", 0)))
            self._metrics.collection_count.labels(name).set(float(stats.get("count", 0)))
        self._metrics.queue_length.set(await self._redis.zcard(self._queue_name))

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except (PyMongoError, RedisError, OSError) as exc:
                logger.warning("could not refresh collection and queue gauges: %s", exc)
            await asyncio.sleep(self._interval)
