"""A tiny HTTP server that answers every request with one HTML page: another origin for
browser tests (a UI served apart from the API)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

PAGE = b"<!doctype html><meta charset=utf-8><title>another origin</title><p>ui</p>"


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await reader.readuntil(b"\r\n\r\n")
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
            f"Content-Length: {len(PAGE)}\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode() + PAGE)
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def page_server() -> AsyncIterator[str]:
    """Serve PAGE on a free port of 127.0.0.1; yields the origin, e.g. http://127.0.0.1:PORT."""
    server = await asyncio.start_server(_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()
