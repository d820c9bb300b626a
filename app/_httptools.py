"""uvicorn's httptools protocol, offering each request a direct writer (see app/direct.py)."""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.direct import EXTENSION, DirectWriter


class Protocol(HttpToolsProtocol):
    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle
        # An upgrade request returns early without a cycle of its own: offer nothing then.
        if cycle is not None and cycle.scope is self.scope:
            extensions: dict[str, object] = self.scope.setdefault("extensions", {})  # type: ignore[assignment]
            extensions[EXTENSION] = DirectWriter(cycle)
