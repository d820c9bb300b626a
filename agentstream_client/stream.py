"""A session's stream that reconnects and resumes by itself.

Each connection is one `GET /v1/sessions/{id}/stream`. The stream keeps the id of the last
event it yielded and, after any end (the server's `stream.reconnect`, a dropped connection, a
dead peer that stopped sending heartbeats, a 503 or 429), opens a new connection with that id
as `Last-Event-ID`: the server replays exactly what was missed, so every event is yielded once,
in order. Before any event is seen it asks again with the position it started with.

Delays: the server's `retry:` hint after a clean end; exponential backoff from it (up to
`max_backoff`) after failures; at least `Retry-After` on 429 and 503. Other 4xx answers (a bad
id, a missing or refused token) end the iteration with `APIError`: retrying cannot help.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from types import TracebackType
from urllib.parse import quote

import httpx

from agentstream_client.errors import error_from_response
from agentstream_client.events import HISTORY_LOST, RECONNECT, Event
from agentstream_client.sse import SSEDecoder

logger = logging.getLogger(__name__)

Since = str | int | datetime.datetime
DEFAULT_RETRY_MS = 1000  # until the server sends its own hint


def since_param(since: Since) -> str:
    """`since_timestamp` as the API takes it: ISO 8601 (a datetime or a string) or epoch ms."""
    if isinstance(since, datetime.datetime):
        moment = since if since.tzinfo else since.replace(tzinfo=datetime.UTC)
        text = moment.astimezone(datetime.UTC).isoformat(timespec="milliseconds")
        return text.replace("+00:00", "Z")
    return str(since)


class SessionStream:
    """An async iterator of `Event`s; use `async with` (or `aclose()`) to release it early."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        session_id: str,
        *,
        headers: Callable[[], dict[str, str]],
        last_event_id: str | None = None,
        since: Since | None = None,
        read_timeout: float = 60.0,
        max_backoff: float = 30.0,
    ) -> None:
        if last_event_id is not None and since is not None:
            raise ValueError("give either last_event_id or since, not both")
        self.session_id = session_id
        self.last_event_id = last_event_id
        self.since = since_param(since) if since is not None else None
        self.retry_ms = DEFAULT_RETRY_MS
        self.connections = 0  # streams opened (1 + reconnects)
        self.last_reason: str | None = None  # why the last connection ended
        self._ending = "closed"
        self._http = http
        self._headers = headers
        self._timeout = httpx.Timeout(10.0, read=read_timeout)
        self._max_backoff = max_backoff
        self._events = self._run()

    def __aiter__(self) -> SessionStream:
        return self

    async def __anext__(self) -> Event:
        return await anext(self._events)

    async def aclose(self) -> None:
        await self._events.aclose()

    async def __aenter__(self) -> SessionStream:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _run(self) -> AsyncGenerator[Event]:
        failures = 0
        while True:
            delay: float | None = None
            try:
                async with self._open() as response:
                    if response.status_code != 200:
                        delay = await self._refused(response, failures)
                    else:
                        self.connections += 1
                        failures = 0
                        self._ending = "closed"  # unless the server says why
                        async for event in self._read(response):
                            yield event
                        self.last_reason = self._ending
            except httpx.TransportError as exc:
                self.last_reason = type(exc).__name__
            if delay is None:
                delay = self._backoff(failures)  # the retry hint right after a good connection
            failures += 1
            logger.log(
                logging.INFO if self.last_reason in _CLEAN else logging.WARNING,
                "stream of %s ended (%s); resuming after %s in %.1fs",
                self.session_id,
                self.last_reason,
                self.last_event_id or self.since or "the start",
                delay,
            )
            await asyncio.sleep(delay)

    def _open(self) -> contextlib.AbstractAsyncContextManager[httpx.Response]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-store", **self._headers()}
        params: dict[str, str] = {}
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        elif self.since is not None:
            params["since_timestamp"] = self.since
        path = f"/v1/sessions/{quote(self.session_id, safe='')}/stream"
        return self._http.stream("GET", path, headers=headers, params=params, timeout=self._timeout)

    async def _read(self, response: httpx.Response) -> AsyncIterator[Event]:
        decoder = SSEDecoder()
        async for line in response.aiter_lines():
            frame = decoder.decode(line)
            if decoder.retry is not None:
                self.retry_ms = decoder.retry
            if frame is None:
                continue
            try:
                body = json.loads(frame.data)
            except json.JSONDecodeError:
                logger.warning("stream of %s: skipping a frame that is not JSON", self.session_id)
                continue
            event = Event.from_sse(frame.event, body, frame.id)
            if event.type == RECONNECT and event.control:
                self._ending = str(event.data.get("reason") or "reconnect")
                resume = event.data.get("last_event_id")
                if isinstance(resume, str) and resume and not self.last_event_id:
                    self.last_event_id = resume
                continue
            if event.id is not None:
                self.last_event_id = event.id
            elif event.type == HISTORY_LOST:
                # Resume from where the server went on from, not from the expired position.
                resumed = event.data.get("resumed_after")
                self.last_event_id = resumed if isinstance(resumed, str) and resumed else None
                self.since = None
            yield event

    async def _refused(self, response: httpx.Response, failures: int) -> float:
        """The delay before the next try after a non-200 answer, or raise when it is final."""
        await response.aread()
        error = error_from_response(response)
        if response.status_code in (429, 503):
            self.last_reason = error.code
            return max(error.retry_after or 0.0, self._backoff(failures))
        if response.status_code >= 500:
            self.last_reason = error.code
            return self._backoff(failures)
        raise error

    def _backoff(self, failures: int) -> float:
        base = self.retry_ms / 1000
        return float(min(self._max_backoff, base * 2 ** min(failures, 16)))


# Ends after which the server expects an immediate resume (after its `retry:` hint).
_CLEAN = frozenset({"timeout", "slow_consumer", "shutdown", "token_expired"})
