"""MAX_BODY_BYTES: request bodies are refused with 413 `payload_too_large` the moment they
pass the limit, whether declared (Content-Length) or sent chunked, and never buffered beyond it.

A declared body over the limit is refused before a byte of it is read (a client that sent
`Expect: 100-continue` never sends it). A chunked one is counted as the app reads it; the read
that passes the limit answers 413 instead and ends the app's work on the request with
`BodyRefused`, which this middleware absorbs.

The answer carries `Connection: close`. Closing a socket while the client is still sending
makes the kernel reset the connection, and the client may then never read the 413; so the rest
of the body is read and discarded, up to DRAIN_BYTES or DRAIN_SECONDS (nginx's lingering
close), after the answer is written and before the connection closes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson

from app.errors import PayloadTooLarge

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

DRAIN_BYTES = 16 * 1024 * 1024
DRAIN_SECONDS = 5.0


class BodyRefused(Exception):
    """Raised into the app from `receive` once its request's body passed MAX_BODY_BYTES."""


class BodyLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        on_refused: Callable[[], None] | None = None,
        drain_bytes: int = DRAIN_BYTES,
        drain_seconds: float = DRAIN_SECONDS,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self._on_refused = on_refused
        self._drain_bytes = drain_bytes
        self._drain_seconds = drain_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = _content_length(headers.get(b"content-length"))
        if declared is not None and declared > self.max_bytes:
            expecting = headers.get(b"expect", b"").lower() == b"100-continue"
            await self._refuse(receive, send, drain=not expecting)
            return
        request = _Request(self, receive, send)
        try:
            await self.app(scope, request.receive, request.send)
        except BodyRefused:
            if not request.refused:
                raise

    async def _refuse(self, receive: Receive, send: Send, *, drain: bool) -> None:
        if self._on_refused is not None:
            self._on_refused()
        message = f"the request body is over {self.max_bytes} bytes (MAX_BODY_BYTES)"
        body = orjson.dumps({"error": {"code": PayloadTooLarge.code, "message": message}})
        await send(
            {
                "type": "http.response.start",
                "status": PayloadTooLarge.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": True})
        if drain:
            await self._drain(receive)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _drain(self, receive: Receive) -> None:
        """Read and discard the rest of the body, within the bounds."""
        discarded = 0
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._drain_seconds):
                while discarded <= self._drain_bytes:
                    message = await receive()
                    if message["type"] != "http.request":
                        return
                    discarded += len(message.get("body", b""))
                    if not message.get("more_body", False):
                        return


class _Request:
    """One request's view of `receive` (counting) and `send` (muted once refused)."""

    __slots__ = ("_limit", "_receive", "_send", "_started", "received", "refused")

    def __init__(self, limit: BodyLimitMiddleware, receive: Receive, send: Send) -> None:
        self._limit = limit
        self._receive = receive
        self._send = send
        self._started = False
        self.received = 0
        self.refused = False

    async def receive(self) -> Message:
        if self.refused:
            raise BodyRefused
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self._limit.max_bytes:
                if self._started:  # the app answered already; all that is left is to stop
                    raise BodyRefused
                self.refused = True
                more = bool(message.get("more_body", False))
                await self._limit._refuse(self._receive, self._send, drain=more)
                raise BodyRefused
        return message

    async def send(self, message: Message) -> None:
        if self.refused:
            return
        if message["type"] == "http.response.start":
            self._started = True
        await self._send(message)


def _content_length(raw: bytes | None) -> int | None:
    if raw is None or not raw.strip().isdigit():
        return None
    return int(raw)
