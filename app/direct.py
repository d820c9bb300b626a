"""Direct writes: the hub writes a live frame straight to an idle subscriber's socket.

Under uvicorn's httptools protocol, the API uses `Protocol` below. For each request it puts a
`DirectWriter` in the ASGI scope under `scope["extensions"]["agentstream.direct_write"]`. An
SSE stream that finds one lends it to the hub while the stream waits with nothing buffered or
held back, and the hub then writes each next frame with one call: no task wake-up and no
trip through the ASGI send chain. That chain is where most of the cost of a delivery went
when every event reaches each subscriber in a wake-up of its own (BENCHMARKS.md).

What runs where:
- Status line and headers, the first frames (retry hint, history replay), gap handling,
  heartbeats, control events and the end of the body: the stream's task, through ASGI `send`,
  exactly as under any server.
- A live frame for a subscriber whose stream is parked in its wait, whose position it follows
  on from, and whose connection is writable: the hub, in `Hub.publish`, through the writer.
- Under any other server (or uvicorn's h11 protocol) the scope has no writer, and every frame
  goes through ASGI `send`, as before.

The writer refuses (returns False) when the response is not a started chunked body, when the
client has gone, or while the transport is paused for writing (its buffer is above the high
water mark); the hub then buffers the frame and wakes the stream, which sends it through ASGI
and so waits on the slow client as before. Only the response's own middleware-free path may
use it: the API adds no middleware that rewrites response bodies (no compression).
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any
from typing import Protocol as TypingProtocol

if TYPE_CHECKING:
    from starlette.types import Scope

EXTENSION = "agentstream.direct_write"


class Writer(TypingProtocol):
    def __call__(self, body: bytes, /) -> bool: ...


class DirectWriter:
    """Writes body bytes of a started, chunked response to its transport; False if it cannot."""

    __slots__ = ("_cycle",)

    def __init__(self, cycle: Any) -> None:
        self._cycle = cycle

    def __call__(self, body: bytes, /) -> bool:
        cycle = self._cycle
        if (
            cycle.disconnected
            or cycle.flow.write_paused
            or not cycle.response_started
            or cycle.response_complete
            or not cycle.chunked_encoding
        ):
            return False
        cycle.transport.write(b"%x\r\n%b\r\n" % (len(body), body))
        return True


def writer_of(scope: Scope) -> Writer | None:
    """The direct writer the server offers for this request, if any."""
    writer: Writer | None = scope.get("extensions", {}).get(EXTENSION)
    return writer


def protocol_class() -> type[Any] | str:
    """uvicorn's `http` setting: our httptools protocol when httptools is installed."""
    if importlib.util.find_spec("httptools") is None:
        return "auto"
    from app._httptools import Protocol

    return Protocol
