"""The agent runtime: the typed context an agent receives, and the emitter behind it.

An agent is `async def agent(ctx: AgentContext) -> None`. Everything it produces goes through
the context, which gives each event and message an id derived from the run id and a step
counter ("<run_id>.<n>", "<run_id>.m<n>"). A retried run replays the same steps with the same
ids, so the events and messages an earlier attempt wrote are not written twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import orjson

from app.errors import APIError, PayloadTooLarge
from app.store.codec import event_json
from app.store.events import (
    MAX_BATCH,
    RESERVED_TYPE_PREFIXES,
    EventWriter,
    NewEvent,
    utc_now,
)
from app.store.runs import run_event_id
from app.validation import event_type, json_object, optional_identifier

if TYPE_CHECKING:
    from app.settings import Settings
    from app.store.messages import MessageStore

logger = logging.getLogger(__name__)

type AgentFn = Callable[[AgentContext], Awaitable[None]]
type Validator = Callable[[dict[str, Any]], object]

_ENVELOPE = 1024  # bytes an event's JSON needs beyond its data: ids, type, timestamp, token


class InputError(ValueError):
    """A run's input is not what its agent accepts."""


@dataclasses.dataclass(frozen=True, slots=True)
class Agent:
    """An agent and, optionally, the check of its input (run by the API before enqueueing)."""

    run: AgentFn
    validate: Validator | None = None
    description: str = ""


class Emitter:
    """Writes a run's events in order, in batches, from one background task.

    One `EventWriter.append` per `interval` seconds or per `max_events` events, whichever comes
    first. `emit` only buffers (it waits while a full batch is pending), so a chatty agent costs
    few round trips; each event keeps its own id and gets its own position. Events whose ids
    are in `skip` were written by an earlier attempt of the run and are dropped.
    """

    def __init__(
        self,
        writer: EventWriter,
        session_id: str,
        *,
        interval: float,
        max_events: int,
        skip: Collection[str] = (),
    ) -> None:
        self._writer = writer
        self._session_id = session_id
        self._interval = interval
        self._max_events = max(1, max_events)
        self._batch = min(self._max_events, MAX_BATCH)
        self._skip = frozenset(skip)
        self._buffer: list[NewEvent] = []
        self._oldest = 0.0  # loop time at which the oldest buffered event arrived
        self._cond = asyncio.Condition()
        self._in_flight = False
        self._flushing = 0
        self._closing = False
        self._error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        self.appends = 0
        self.events = 0

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run(), name=f"emitter-{self._session_id}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.close()
            return
        try:
            await self._stop()
        except Exception:
            logger.warning("buffered events could not be written", exc_info=True)

    async def emit(self, event: NewEvent) -> None:
        """Buffer one event (it must carry an event_id); raise if an earlier write failed."""
        if event.event_id is None:
            raise ValueError("an emitted event needs an event_id")
        if event.event_id in self._skip:
            return
        async with self._cond:
            await self._cond.wait_for(
                lambda: len(self._buffer) < self._max_events or self._error is not None
            )
            self._raise_error()
            if self._closing:
                raise RuntimeError("the emitter is closed")
            if not self._buffer:
                self._oldest = asyncio.get_running_loop().time()
            self._buffer.append(event)
            self._cond.notify_all()

    async def flush(self) -> None:
        """Wait until every buffered event is written; raise the write error if one failed."""
        async with self._cond:
            self._flushing += 1
            self._cond.notify_all()
            try:
                await self._cond.wait_for(
                    lambda: (not self._buffer and not self._in_flight) or self._error is not None
                )
            finally:
                self._flushing -= 1
            self._raise_error()

    async def close(self) -> None:
        try:
            await self.flush()
        finally:
            await self._stop()

    async def _stop(self) -> None:
        """End the writer task once it has written what is buffered (or has failed)."""
        async with self._cond:
            self._closing = True
            self._cond.notify_all()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise
        self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _due(self) -> bool:
        return len(self._buffer) >= self._max_events or self._flushing > 0 or self._closing

    async def _run(self) -> None:
        while True:
            async with self._cond:
                await self._cond.wait_for(lambda: bool(self._buffer) or self._closing)
                if not self._buffer:
                    return
                if self._interval > 0 and not self._due():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout_at(self._oldest + self._interval):
                            await self._cond.wait_for(self._due)
                batch = self._buffer[: self._batch]
                del self._buffer[: len(batch)]
                self._oldest = asyncio.get_running_loop().time()
                self._in_flight = True
                self._cond.notify_all()
            try:
                await self._writer.append(self._session_id, batch)
            except Exception as exc:
                async with self._cond:
                    self._error = exc
                    self._in_flight = False
                    self._cond.notify_all()
                return
            async with self._cond:
                self.appends += 1
                self.events += len(batch)
                self._in_flight = False
                self._cond.notify_all()


class MessageStream:
    """A message being streamed: each `delta` is a `message.delta` event."""

    def __init__(self, ctx: AgentContext, message_id: str, role: str) -> None:
        self._ctx = ctx
        self.message_id = message_id
        self.role = role
        self._parts: list[str] = []

    @property
    def content(self) -> str:
        return "".join(self._parts)

    async def delta(self, text: str) -> None:
        if not isinstance(text, str):
            raise TypeError(f"a delta must be a string, got {type(text).__name__}")
        if not text:
            return
        self._parts.append(text)
        step = self._ctx.max_delta_chars
        for start in range(0, len(text), step):
            piece = text[start : start + step]
            await self._ctx._emit("message.delta", {"message_id": self.message_id, "delta": piece})


class AgentContext:
    """What an agent gets: its run's ids and input, and the ways to produce events and messages.

    Cancellation (POST /cancel, the time limit, a worker shutting down) arrives as
    `asyncio.CancelledError` at the agent's next await. Let it propagate; use `try/finally`
    for cleanup, where `ctx.cancelled` tells whether the run is being cancelled.
    """

    def __init__(
        self,
        *,
        run_id: str,
        session_id: str,
        trace_id: str,
        agent: str,
        input: dict[str, Any],
        attempt: int,
        settings: Settings,
        emitter: Emitter,
        messages: MessageStore,
    ) -> None:
        self.run_id = run_id
        self.session_id = session_id
        self.trace_id = trace_id
        self.agent = agent
        self.input = input
        self.attempt = attempt
        self.settings = settings
        self._emitter = emitter
        self._messages = messages
        self._max_event_bytes = settings.event_max_bytes
        self.max_delta_chars = max(1, (settings.event_max_bytes - _ENVELOPE) // 6)
        self._steps = 0
        self._message_count = 0
        self._open: dict[str, tuple[MessageStream, str | None]] = {}

    @property
    def cancelled(self) -> bool:
        """True while the run is being cancelled (in an agent's `finally` or `except`)."""
        task = asyncio.current_task()
        return task is not None and task.cancelling() > 0

    async def emit(self, type: str, data: dict[str, Any] | None = None) -> str:
        """Add an event of the agent's own to the session's stream; return its event_id."""
        try:
            checked_type = event_type(type, "event type")
            checked_data = json_object({} if data is None else data, "event data")
        except APIError as exc:
            raise ValueError(exc.message) from None
        if checked_type.startswith(RESERVED_TYPE_PREFIXES):
            raise ValueError("event types run.* and stream.* are reserved for the service")
        return await self._emit(checked_type, checked_data)

    async def message(self, role: str, content: str, *, parent_id: str | None = None) -> str:
        """Write a whole message (one `message.completed` event); return its message_id."""
        if not isinstance(content, str):
            raise TypeError(f"content must be a string, got {type(content).__name__}")
        message_id = self._new_message_id()
        await self._complete(message_id, _role(role), content, _parent(parent_id))
        return message_id

    @contextlib.asynccontextmanager
    async def stream_message(
        self, role: str = "assistant", *, parent_id: str | None = None
    ) -> AsyncIterator[MessageStream]:
        """Stream a message as deltas; it is completed and stored when the block ends normally.

        A block that ends with an exception leaves the message open for the run's end to close
        (`close_open_messages`), unless the run goes back to the queue to be tried again.
        """
        checked_role, checked_parent = _role(role), _parent(parent_id)
        stream = MessageStream(self, self._new_message_id(), checked_role)
        self._open[stream.message_id] = (stream, checked_parent)
        yield stream
        del self._open[stream.message_id]
        await self._complete(stream.message_id, checked_role, stream.content, checked_parent)

    async def close_open_messages(self, reason: str) -> None:
        """Complete every message still streaming, marked incomplete: the run ended `reason`
        (cancelled, timed_out, failed) while it was being written."""
        while self._open:
            message_id, (stream, parent_id) = self._open.popitem()
            await self._complete(message_id, stream.role, stream.content, parent_id, reason)

    async def _complete(
        self,
        message_id: str,
        role: str,
        content: str,
        parent_id: str | None,
        incomplete: str | None = None,
    ) -> None:
        # The document first, so a client that sees message.completed can read the message.
        await self._messages.put(
            message_id=message_id,
            session_id=self.session_id,
            role=role,
            content=content,
            parent_id=parent_id,
            trace_id=self.trace_id,
            incomplete=incomplete,
        )
        shown, truncated = _fit(content, self._max_event_bytes - _ENVELOPE - len(role))
        data: dict[str, Any] = {"message_id": message_id, "role": role, "content": shown}
        if truncated:
            data["truncated"] = True  # the whole text is in the messages collection
        if incomplete is not None:
            data.update(incomplete=True, reason=incomplete)
        await self._emit("message.completed", data)

    async def _emit(self, type: str, data: dict[str, Any]) -> str:
        self._steps += 1
        event = NewEvent(type, data, self.trace_id, run_event_id(self.run_id, self._steps))
        self._check_size(event)
        await self._emitter.emit(event)
        assert event.event_id is not None
        return event.event_id

    def _new_message_id(self) -> str:
        self._message_count += 1
        return f"{self.run_id}.m{self._message_count}"

    def _check_size(self, event: NewEvent) -> None:
        doc = {
            "event_id": event.event_id,
            "session_id": self.session_id,
            "seq": 0,
            "trace_id": event.trace_id,
            "type": event.type,
            "data": event.data,
            "timestamp": utc_now(),
        }
        size = len(event_json(doc)) + 18  # room for the largest position in the resume token
        if size > self._max_event_bytes:
            raise PayloadTooLarge(
                f"event {event.type} is {size} bytes; the limit is {self._max_event_bytes}"
                " (EVENT_MAX_BYTES)"
            )


def _role(role: object) -> str:
    try:
        return event_type(role, "role")
    except APIError as exc:
        raise ValueError(exc.message) from None


def _parent(parent_id: object) -> str | None:
    try:
        return optional_identifier(parent_id, "parent_id")
    except APIError as exc:
        raise ValueError(exc.message) from None


def _fit(content: str, budget: int) -> tuple[str, bool]:
    """`content`, cut so that its JSON string takes at most `budget` bytes; True when cut."""
    size = len(orjson.dumps(content))
    if size <= budget:
        return content, False
    cut = content
    while size > budget and cut:
        cut = cut[: max(0, len(cut) * budget // size - 1)]
        size = len(orjson.dumps(cut))
    return cut, True
