"""The fan-out hub: one feed in, every subscriber of a session out.

The hub keeps, per watched session, the highest position it has published without a hole
(the watermark), so the feeds know where to read from and duplicates are dropped once, here.
Each subscriber gets the shared, pre-framed bytes in a bounded buffer; overflowing it marks
the subscriber so its stream ends with a resumable position.

A stream that waits with nothing buffered or held back may lend its subscription a direct
writer (`park`; see app/direct.py). Items for a parked subscriber still go into its buffer,
but do not wake its stream: right after the publishing (one `call_soon` per pass, not per
subscriber) the hub writes each parked subscriber's buffered frames that follow on from its
position, joined into one write. Anything else (a hole before the next position, a writer
that refuses because the client is slow or gone, a wake-up) ends the parking and leaves the
items in the buffer for the stream. The buffer is the one place items wait on either path,
so the order, the dedup by position and the buffer bound are the same on both.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from app.sse import event_frame
from app.store.codec import Document

if TYPE_CHECKING:
    from app.direct import Writer

logger = logging.getLogger(__name__)

type Item = tuple[int, bytes | None]  # (position, SSE frame); None for a void position
type Filler = Callable[[str, list[int]], Awaitable[list[Document]]]


class Subscription:
    """One subscriber's bounded buffer. Filled by the hub, drained by the subscriber's stream,
    or, while the stream is parked, written out by the hub itself (`write_out`)."""

    __slots__ = (
        "_buffer",
        "_limit",
        "_waiter",
        "_woken",
        "_writer",
        "overflowed",
        "position",
        "session_id",
        "written_at",
    )

    def __init__(self, session_id: str, limit: int) -> None:
        self.session_id = session_id
        self._buffer: collections.deque[Item] = collections.deque()
        self._limit = limit
        self._waiter: asyncio.Future[None] | None = None
        self._woken = False
        self._writer: Writer | None = None
        self.overflowed = False
        self.position = 0  # while parked: the last position written to the client
        self.written_at = 0.0  # monotonic time of the hub's last write for this subscriber

    def push(self, item: Item) -> bool:
        """Buffer `item`; wake the stream, or, when parked, return True: write me out soon."""
        if self.overflowed:
            return False
        if len(self._buffer) >= self._limit:
            self.overflowed = True
            self._buffer.clear()
            self.wake()
            return False
        self._buffer.append(item)
        if self._writer is not None:
            return len(self._buffer) == 1
        self.wake()
        return False

    def write_out(self) -> int:
        """While parked, write what is buffered that follows on from `position`, in one write.

        Returns the number of frames written. Anything it cannot write (a hole before the
        next position, a writer that refuses) ends the parking and wakes the stream, which
        finds those items in the buffer.
        """
        writer = self._writer
        buffer = self._buffer
        if writer is None or not buffer:
            return 0
        position = self.position
        frames: list[bytes] = []
        taken = 0
        for seq, frame in buffer:
            if seq > position + 1:
                break
            taken += 1
            if seq == position + 1:  # (one at or below `position` the stream has already)
                position = seq
                if frame is not None:
                    frames.append(frame)
        if frames and not writer(frames[0] if len(frames) == 1 else b"".join(frames)):
            self.wake()  # slow or gone: the stream takes over, from the same items
            return 0
        if taken == len(buffer):
            buffer.clear()
        else:
            for _ in range(taken):
                buffer.popleft()
            self.wake()  # a hole: the stream holds the rest back and fills it
        self.position = position
        if frames:
            self.written_at = time.monotonic()
        return len(frames)

    def park(self, position: int, writer: Writer) -> None:
        """The stream has written up to `position` and holds nothing back; the hub may write on.

        Ignored while items are buffered or a wake-up is pending: the stream will not wait.
        """
        if not self._buffer and not self._woken and not self.overflowed:
            self.position = position
            self._writer = writer

    def unpark(self, position: int) -> int:
        """End the parking; return the position the stream continues from."""
        self._writer = None
        return max(position, self.position)

    def drain(self) -> list[Item]:
        items = list(self._buffer)
        self._buffer.clear()
        self._woken = False
        return items

    def wake(self) -> None:
        """Make the current or next `wait` return (until the next `drain`); end any parking."""
        self._woken = True
        self._writer = None
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, timeout: float | None) -> None:
        """Return when items arrive, on overflow or a wake-up, or after `timeout` seconds.

        A bare future and one timer: this runs once per delivery batch of every subscriber,
        and asyncio.Event plus asyncio.timeout cost several times as much (see BENCHMARKS.md).
        """
        if self._woken or self.overflowed:
            return
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = None if timeout is None else loop.call_later(timeout, _resolve, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def __len__(self) -> int:
        return len(self._buffer)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _Session:
    __slots__ = ("beyond", "stuck_since", "subscribers", "watermark")

    def __init__(self) -> None:
        self.subscribers: set[Subscription] = set()
        self.watermark: int | None = None
        self.beyond: set[int] = set()
        self.stuck_since: float | None = None


class Hub:
    def __init__(
        self,
        *,
        buffer_limit: int = 1000,
        filler: Filler | None = None,
        on_written: Callable[[int], object] | None = None,
    ) -> None:
        self._buffer_limit = buffer_limit
        self._on_written = on_written  # told how many frames each publish wrote directly
        self._sessions: dict[str, _Session] = {}
        self._filler = filler
        self._fills: dict[tuple[str, tuple[int, ...]], asyncio.Future[list[Document]]] = {}
        self.closing = asyncio.Event()
        self.published = 0
        self.written = 0  # frames written directly to parked subscribers (app/direct.py)
        self._parked: list[Subscription] = []  # parked subscribers with frames to write out
        self._writing = False  # a write-out pass is scheduled

    @contextlib.asynccontextmanager
    async def subscribe(self, session_id: str) -> AsyncIterator[Subscription]:
        """Register a subscriber for the block; it is always released on exit."""
        subscription = Subscription(session_id, self._buffer_limit)
        session = self._sessions.get(session_id)
        if session is None:
            session = self._sessions[session_id] = _Session()
        session.subscribers.add(subscription)
        try:
            yield subscription
        finally:
            subscription.unpark(0)  # a write-out pass still scheduled skips it
            session.subscribers.discard(subscription)
            if not session.subscribers and self._sessions.get(session_id) is session:
                del self._sessions[session_id]

    def start_at(self, session_id: str, seq: int) -> None:
        """A subscriber has everything up to `seq`; the feed may start there if it has no mark."""
        session = self._sessions.get(session_id)
        if session is not None and session.watermark is None:
            session.beyond = {s for s in session.beyond if s > seq}
            while seq + 1 in session.beyond:
                seq += 1
                session.beyond.discard(seq)
            session.watermark = seq
            session.stuck_since = time.monotonic() if session.beyond else None

    def publish(self, docs: Iterable[Document]) -> int:
        """Fan stored documents out to their sessions' subscribers; return how many were new."""
        delivered = 0
        parked = self._parked
        for doc in docs:
            session = self._sessions.get(doc["session_id"])
            if session is None:
                continue
            seq: int = doc["seq"]
            if not self._advance(session, seq):
                continue
            item: Item = (seq, None if doc.get("void") else event_frame(doc))
            for subscription in session.subscribers:
                if subscription.push(item):
                    parked.append(subscription)
            delivered += 1
        self.published += delivered
        if parked and not self._writing:
            self._writing = True
            asyncio.get_running_loop().call_soon(self._write_out)
        return delivered

    def _write_out(self) -> None:
        """Write the frames published since the last pass to every parked subscriber: one
        write each, however many events arrived in between (so a busy process batches)."""
        parked, self._parked = self._parked, []
        self._writing = False
        written = 0
        for subscription in parked:
            written += subscription.write_out()
        if written:
            self.written += written
            if self._on_written is not None:
                self._on_written(written)

    def _advance(self, session: _Session, seq: int) -> bool:
        mark = session.watermark
        if mark is not None:
            if seq <= mark or seq in session.beyond:
                return False
            if seq == mark + 1:
                mark = seq
                while mark + 1 in session.beyond:
                    mark += 1
                    session.beyond.discard(mark)
                session.watermark = mark
                session.stuck_since = None if not session.beyond else time.monotonic()
                return True
            if not session.beyond:
                session.stuck_since = time.monotonic()
        session.beyond.add(seq)
        return True

    def positions(self) -> dict[str, int]:
        """Each watched session's watermark, for the feeds' catch-up and polling."""
        return {
            sid: session.watermark
            for sid, session in self._sessions.items()
            if session.watermark is not None
        }

    def holes(self, older_than: float) -> dict[str, list[int]]:
        """Positions missing below a session's published ones for longer than `older_than` s."""
        now = time.monotonic()
        found: dict[str, list[int]] = {}
        for sid, session in self._sessions.items():
            stuck = session.stuck_since
            if stuck is None or now - stuck < older_than or session.watermark is None:
                continue
            top = max(session.beyond)
            found[sid] = [s for s in range(session.watermark + 1, top) if s not in session.beyond]
        return found

    async def fill(self, session_id: str, seqs: list[int]) -> list[Document]:
        """Read (or void) positions that never arrived, once per process, and publish them."""
        if self._filler is None or not seqs:
            return []
        key = (session_id, tuple(seqs))
        pending = self._fills.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[list[Document]] = asyncio.get_running_loop().create_future()
        self._fills[key] = future
        try:
            docs = await self._filler(session_id, seqs)
            self.publish(docs)
            future.set_result(docs)
            return docs
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._fills[key]

    def subscriber_counts(self) -> list[int]:
        return [len(session.subscribers) for session in self._sessions.values()]

    @property
    def subscribers(self) -> int:
        return sum(len(session.subscribers) for session in self._sessions.values())

    def sessions(self) -> list[str]:
        return list(self._sessions)

    def close(self) -> None:
        """Ask every stream to finish (server shutdown)."""
        self.closing.set()
        for session in self._sessions.values():
            for subscription in session.subscribers:
                subscription.wake()
