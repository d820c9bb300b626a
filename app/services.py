"""What the lifespan opens and every request uses: typed, built once per process."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from arq.connections import ArqRedis
    from pymongo import AsyncMongoClient
    from starlette.requests import Request

    from app.feeds.base import Feed
    from app.hub import Hub
    from app.limits import StreamSlots, WriteRateLimiter
    from app.metrics import Metrics
    from app.mongo import Collections, Document
    from app.monitor import Monitor
    from app.runs import Runs
    from app.settings import Settings
    from app.store.events import EventWriter
    from app.store.history import History
    from app.stream import SendWatchdog


@dataclasses.dataclass(slots=True)
class Services:
    settings: Settings
    mongo: AsyncMongoClient[Document]
    collections: Collections
    redis: ArqRedis
    metrics: Metrics
    writer: EventWriter
    history: History
    hub: Hub
    feed: Feed
    monitor: Monitor
    runs: Runs
    watchdog: SendWatchdog
    stream_slots: StreamSlots
    write_rate: WriteRateLimiter


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found
