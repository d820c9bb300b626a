"""HEADER_TIMEOUT: a request's headers must arrive within it, or the connection is closed.

uvicorn has no such timeout (issue Kludex/uvicorn#157): its keep-alive timer restarts on every
byte received, so a client that sends its headers a byte at a time (slowloris) holds a
connection and its file descriptor for as long as it likes. This wraps uvicorn's HTTP protocol
(httptools, else h11): a timer starts when a connection opens, and when the first byte of a
further request on a kept-alive connection arrives; it stops as soon as the headers are parsed
(uvicorn then starts a request cycle). Bodies and responses are not timed here; streams last.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


class HeaderDeadline(asyncio.Protocol):
    """Mixin for a uvicorn HTTP protocol class (listed first among the bases)."""

    header_timeout: float = 10.0
    on_header_timeout: Callable[[], None] | None = None
    transport: asyncio.Transport
    cycle: Any
    loop: asyncio.AbstractEventLoop

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._timed_cycle: object = None
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        if self._header_timer is None and (self.cycle is None or self.cycle.response_complete):
            self._arm_header_timer()  # the first bytes of another request on this connection
        super().data_received(data)
        if self._header_timer is not None and self.cycle is not self._timed_cycle:
            self._timed_cycle = self.cycle  # a new request cycle: its headers are complete
            self._disarm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._timed_cycle = self.cycle
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        logger.info("closing a connection whose request headers took over %gs", self.header_timeout)
        self.transport.close()
        if self.on_header_timeout is not None:
            self.on_header_timeout()


def header_timeout_protocol(
    timeout: float,
    on_timeout: Callable[[], None] | None = None,
    base: type[asyncio.Protocol] | None = None,
) -> type[asyncio.Protocol]:
    """`base` (default: uvicorn's httptools protocol when installed, else h11) with
    HEADER_TIMEOUT."""
    if base is None:
        try:
            from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

            base = HttpToolsProtocol
        except ImportError:  # pragma: no cover - httptools is part of uvicorn[standard]
            from uvicorn.protocols.http.h11_impl import H11Protocol

            base = H11Protocol
    attributes: dict[str, Any] = {"header_timeout": timeout}
    if on_timeout is not None:
        attributes["on_header_timeout"] = staticmethod(on_timeout)
    return type(f"HeaderTimeout{base.__name__}", (HeaderDeadline, base), attributes)
