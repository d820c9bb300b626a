"""MAX_BODY_BYTES in process (the same middleware tests/limits/test_bodies.py drives through
`app serve`): a declared body, a chunked one, and the counter of refusals."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import httpx

from app.settings import Settings
from support.servers import running_api


async def test_bodies_over_the_limit_are_refused_in_process(settings: Settings) -> None:
    small = dataclasses.replace(settings, max_body_bytes=2048)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b" " * 1024

    async with running_api(small) as api, httpx.AsyncClient(base_url=api.url) as client:
        declared = await client.post(
            "/v1/sessions/b/events", json={"type": "t", "data": {"x": "y" * 4096}}
        )
        assert declared.status_code == 413
        assert declared.headers["connection"] == "close"
        chunked = await client.post(
            "/v1/sessions/b/events", content=chunks(), headers={"content-type": "application/json"}
        )
        assert chunked.status_code == 413
        assert chunked.json()["error"]["code"] == "payload_too_large"
        fits = await client.post("/v1/sessions/b/events", json={"type": "t", "data": {}})
        assert fits.status_code == 201
        port = int(api.url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /v1/sessions/b/events HTTP/1.1\r\nhost: x\r\ncontent-length: 999999\r\n"
            b"expect: 100-continue\r\n\r\n"
        )
        async with asyncio.timeout(20):
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 413")
            while await reader.read(65536):
                pass  # answered and closed without waiting for a body that never comes
        writer.close()
        refused = api.services.metrics.limit_rejections.labels("payload_too_large")
        assert refused._value.get() == 3
