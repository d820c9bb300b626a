"""One SSE connection: replay from the database, then live from the hub, in one gap-free order.

The subscription is registered before the first catch-up query, so every event committed
after that query reaches the buffer. Positions are dense: the stream writes position n+1 only
after n, holds later ones back while a concurrent write is still in flight, and asks the hub
to read or void a position that stays missing for SSE_GAP_TIMEOUT.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import TYPE_CHECKING

import pymongo
from pymongo.errors import PyMongoError

from app.direct import writer_of
from app.logs import log_context
from app.sse import HEARTBEAT, control_frame, event_frame, retry_frame
from app.store import tokens

if TYPE_CHECKING:
    from starlette.types import Message, Receive, Scope, Send

    from app.direct import Writer
    from app.hub import Subscription
    from app.limits import Slot
    from app.services import Services

logger = logging.getLogger(__name__)

CATCH_UP_PAGE = 500
RECONNECT = "stream.reconnect"
HISTORY_LOST = "stream.history_lost"


class _Disconnected(Exception):
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class Start:
    position: int  # deliver every position after this one
    lost: dict[str, object] | None = None  # the history-lost notice to send first, if any


class EventStream:
    """The ASGI response for GET /v1/sessions/{id}/stream."""

    def __init__(
        self,
        services: Services,
        session_id: str,
        start: Start,
        slot: Slot,
        *,
        expires_at: float | None = None,
    ) -> None:
        self._svc = services
        self._slot = slot
        self._session_id = session_id
        self._start = start
        self._expires_at = expires_at  # the token's exp (epoch seconds): the stream ends there
        self._position = start.position
        self._pending: dict[int, bytes | None] = {}
        self._gap_since: float | None = None
        self._disconnected = asyncio.Event()
        self._writing_since: float | None = None
        self._stuck = False
        self._task: asyncio.Task[object] | None = None
        self._writer: Writer | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._writer = writer_of(scope)
        with self._slot:  # the stream's place under the caps, released however it ends
            await self._serve(receive, send)

    async def _serve(self, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-store"),
                    (b"x-accel-buffering", b"no"),
                ],
            }
        )
        self._task = asyncio.current_task()
        watchdog = self._svc.watchdog
        watchdog.add(self)
        try:
            with log_context(session_id=self._session_id):
                async with self._svc.hub.subscribe(self._session_id) as subscription:
                    listener = asyncio.create_task(self._listen(receive, subscription))
                    try:
                        await self._run(subscription, send)
                    finally:
                        listener.cancel()
                        await asyncio.gather(listener, return_exceptions=True)
                    logger.debug("stream of %s ended at %s", self._session_id, self._position)
        except _Disconnected:
            with log_context(session_id=self._session_id):
                logger.debug("client of %s went away at %s", self._session_id, self._position)
        finally:
            watchdog.discard(self)
            self._slot.release()
        if not self._disconnected.is_set():
            await self._write(send, b"", more=False)

    async def _listen(self, receive: Receive, subscription: Subscription) -> None:
        while True:
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                self._disconnected.set()
                subscription.wake()
                return

    async def _run(self, subscription: Subscription, send: Send) -> None:
        settings = self._svc.settings
        opening = retry_frame(settings.sse_retry_ms)
        if self._start.lost is not None:
            self._svc.metrics.history_lost.inc()
            opening += control_frame(HISTORY_LOST, self._start.lost)
        await self._write(send, opening)
        try:
            await self._catch_up(subscription, send)
        except PyMongoError as exc:
            logger.warning("catch-up of %s failed: %s", self._session_id, exc)
            return await self._finish(send, "unavailable")
        self._svc.hub.start_at(self._session_id, self._position)
        await self._live(subscription, send)

    async def _live(self, subscription: Subscription, send: Send) -> None:
        """Live events from the hub until the client leaves, the time limit, the token's expiry,
        or shutdown."""
        settings = self._svc.settings
        deadline, ending = self._deadline()
        last_write = time.monotonic()
        while True:
            if self._svc.hub.closing.is_set():
                return await self._finish(send, "shutdown")
            if subscription.overflowed or len(self._pending) > settings.sse_buffer_events:
                self._svc.metrics.slow_client_disconnects.inc()
                return await self._finish(send, "slow_consumer")
            self._take(subscription.drain())
            if await self._flush(send):
                last_write = time.monotonic()
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return await self._finish(send, ending)
            if self._gap_since is not None and now - self._gap_since >= settings.sse_gap_timeout:
                await self._fill_gap()
                continue
            if now - last_write >= settings.sse_heartbeat:
                await self._write(send, HEARTBEAT)
                last_write = now
            wait = last_write + settings.sse_heartbeat - now
            if deadline is not None:
                wait = min(wait, deadline - now)
            if self._gap_since is not None:
                wait = min(wait, self._gap_since + settings.sse_gap_timeout - now)
            if self._writer is not None and not self._pending:
                subscription.park(self._position, self._writer)  # the hub writes while we wait
            await subscription.wait(max(wait, 0.0))
            self._position = subscription.unpark(self._position)
            last_write = max(last_write, subscription.written_at)
            if self._disconnected.is_set():
                raise _Disconnected

    def _deadline(self) -> tuple[float | None, str]:
        """When the stream ends by itself (monotonic clock), and the reason it gives then."""
        now = time.monotonic()
        timeout = self._svc.settings.sse_timeout
        deadline = None if timeout == 0 else now + timeout
        if self._expires_at is not None:
            expiry = now + (self._expires_at - time.time())
            if deadline is None or expiry <= deadline:
                return expiry, "token_expired"
        return deadline, "timeout"

    async def _catch_up(self, subscription: Subscription, send: Send) -> None:
        """Replay stored events; repeat while live items were dropped (buffer overflow)."""
        history = self._svc.history
        while True:
            subscription.overflowed = False
            with pymongo.timeout(self._svc.settings.request_timeout):  # 503-like: ends the stream
                docs = await history.after(self._session_id, self._position, CATCH_UP_PAGE)
            for doc in docs:
                self._pending[doc["seq"]] = None if doc.get("void") else event_frame(doc)
            await self._flush(send)
            if self._disconnected.is_set():
                raise _Disconnected
            if subscription.overflowed:
                subscription.drain()
                continue
            if len(docs) < CATCH_UP_PAGE or self._pending:
                return

    def _take(self, items: list[tuple[int, bytes | None]]) -> None:
        for seq, frame in items:
            if seq > self._position:
                self._pending[seq] = frame

    async def _flush(self, send: Send) -> bool:
        """Write every position that follows on from the last one written, in one write."""
        pending = self._pending
        chunks: list[bytes] = []
        position = self._position
        while position + 1 in pending:
            position += 1
            frame = pending.pop(position)
            if frame is not None:
                chunks.append(frame)
        self._position = position
        if not pending:
            self._gap_since = None
        elif chunks or self._gap_since is None:
            self._gap_since = time.monotonic()
        if chunks:
            await self._write(send, b"".join(chunks))
            self._svc.metrics.deliveries.inc(len(chunks))
        return bool(chunks)

    async def _fill_gap(self) -> None:
        missing = [
            s for s in range(self._position + 1, max(self._pending)) if s not in self._pending
        ]
        logger.info("positions %s of %s overdue; reading them", missing, self._session_id)
        self._gap_since = time.monotonic()  # on failure, the next try is one gap timeout away
        try:
            with pymongo.timeout(self._svc.settings.request_timeout):
                found = await self._svc.hub.fill(self._session_id, missing)
        except PyMongoError as exc:
            logger.warning("could not read overdue positions of %s: %s", self._session_id, exc)
            return
        for doc in found:
            if doc["seq"] > self._position:
                self._pending[doc["seq"]] = None if doc.get("void") else event_frame(doc)

    async def _finish(self, send: Send, reason: str) -> None:
        last = tokens.encode(self._session_id, self._position) if self._position else None
        frame = control_frame(RECONNECT, {"reason": reason, "last_event_id": last})
        await self._write(send, frame)

    async def _write(self, send: Send, body: bytes, *, more: bool = True) -> None:
        if self._disconnected.is_set():
            raise _Disconnected
        self._writing_since = time.monotonic()
        try:
            await send({"type": "http.response.body", "body": body, "more_body": more})
        except asyncio.CancelledError:
            if not self._stuck:
                raise
            task = asyncio.current_task()
            assert task is not None
            task.uncancel()  # the watchdog's cancellation, not the server's
            logger.info("client of %s stopped reading; closing", self._session_id)
            self._svc.metrics.slow_client_disconnects.inc()
            self._disconnected.set()
            raise _Disconnected from None
        except OSError:
            self._disconnected.set()
            raise _Disconnected from None
        finally:
            self._writing_since = None

    def abort_if_stuck(self, now: float, timeout: float) -> None:
        """Called by the watchdog: cancel a write that has waited on the client too long."""
        since = self._writing_since
        if since is not None and now - since >= timeout and not self._stuck:
            self._stuck = True
            assert self._task is not None
            self._task.cancel()  # the task is suspended in that write, so it lands there


class SendWatchdog:
    """Ends streams whose client stopped reading (SSE_SEND_TIMEOUT).

    One sweep over the open streams every quarter of the timeout (at most every second)
    replaces a timer per write, which cost more than the write itself under load.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._streams: set[EventStream] = set()

    def add(self, stream: EventStream) -> None:
        self._streams.add(stream)

    def discard(self, stream: EventStream) -> None:
        self._streams.discard(stream)

    def sweep(self, now: float) -> None:
        for stream in list(self._streams):
            stream.abort_if_stuck(now, self.timeout)

    async def run(self) -> None:
        interval = min(1.0, self.timeout / 4)
        while True:
            await asyncio.sleep(interval)
            self.sweep(time.monotonic())
