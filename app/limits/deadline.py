"""REQUEST_TIMEOUT: every MongoDB operation of one request shares one deadline.

PyMongo's client-side operation timeout (`pymongo.timeout`, a context variable) covers server
selection, connection checkout and each round trip; when the deadline passes, the operation
raises a PyMongo timeout error, which app/errors.py answers with 503 `unavailable`. So a
stalled database costs a request at most REQUEST_TIMEOUT, never a hang.

A stream is no ordinary request: it lives for minutes, so it is left out here. Its start
(`resolve_start`) takes the deadline itself, and so does each of its catch-up and gap reads
(app/stream.py): one that times out ends the stream with `stream.reconnect` (`unavailable`).
The live path reads nothing per client; the feeds wait out an outage and go on.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pymongo

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

STREAM_PATH = re.compile(r"^/v1/sessions/[^/]+/stream$")


def is_stream(scope: Scope) -> bool:
    return bool(STREAM_PATH.match(scope.get("path", "")))


class DeadlineMiddleware:
    def __init__(self, app: ASGIApp, *, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_stream(scope):
            await self.app(scope, receive, send)
            return
        with pymongo.timeout(self.timeout):
            await self.app(scope, receive, send)
