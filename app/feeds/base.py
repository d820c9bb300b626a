"""What every feed shares: the Feed protocol and catching up on holes from the collection."""

from __future__ import annotations

import datetime
import logging
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from app.hub import Hub
    from app.metrics import Metrics
    from app.store.codec import Document
    from app.store.history import History

logger = logging.getLogger(__name__)


class Feed(Protocol):
    mode: str

    @property
    def running(self) -> bool: ...

    async def run(self) -> None: ...


class FeedLoop:
    """What both feeds share: `running` for /readyz, false again once the loop ends."""

    mode = "none"

    def __init__(self) -> None:
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
        raise NotImplementedError


class Publisher:
    """Publishes to the hub, measures lag, and reads forward from the hub's watermarks."""

    def __init__(self, hub: Hub, history: History, metrics: Metrics, *, batch: int) -> None:
        self.hub = hub
        self.history = history
        self.metrics = metrics
        self.batch = batch

    def publish(self, docs: list[Document]) -> None:
        if not docs:
            return
        if self.hub.publish(docs):
            now = datetime.datetime.now(datetime.UTC)
            for doc in docs:
                self.metrics.feed_lag.observe(max((now - doc["timestamp"]).total_seconds(), 0.0))

    async def read_forward(self) -> None:
        """Query from every watched session's watermark until no session returns a full batch."""
        while True:
            positions = self.hub.positions()
            if not positions:
                return
            docs = await self.history.poll(positions, self.batch)
            self.metrics.poll_queries.inc()
            self.publish(docs)
            per_session: dict[str, int] = {}
            for doc in docs:
                per_session[doc["session_id"]] = per_session.get(doc["session_id"], 0) + 1
            if all(count < self.batch for count in per_session.values()):
                return

    async def fill_holes(self, older_than: float) -> None:
        for session_id, seqs in self.hub.holes(older_than).items():
            await self.hub.fill(session_id, seqs)
