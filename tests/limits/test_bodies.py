"""MAX_BODY_BYTES on a real `app serve`: 413 `payload_too_large` as soon as a body passes it,
declared or chunked, and the client reads that answer before the connection closes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import orjson
import pytest

from support.serve import ServedAPI, module_settings, serving

pytestmark = pytest.mark.timeout(120)

LIMIT = 4096


@pytest.fixture(scope="module")
def api(
    mongo_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedAPI]:
    settings = module_settings(mongo_url, redis_url)
    with serving(settings, tmp_path_factory.mktemp("bodies"), MAX_BODY_BYTES=str(LIMIT)) as api:
        yield api


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    async with asyncio.timeout(20):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)
        }
        body = await reader.readexactly(int(headers["content-length"]))
    return status, headers, body


async def test_a_declared_body_over_the_limit_is_refused_before_it_is_sent(
    api: ServedAPI,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
    try:
        writer.write(
            b"POST /v1/sessions/big/events HTTP/1.1\r\nhost: x\r\n"
            b"content-type: application/json\r\ncontent-length: 100000000\r\n\r\n"
        )
        await writer.drain()
        status, headers, body = await read_response(reader)  # not a byte of the body sent
        assert status == 413
        assert headers["connection"] == "close"
        assert orjson.loads(body)["error"]["code"] == "payload_too_large"
        writer.write(b"x" * 65536)  # what the client had already sent is read and discarded
        writer.write_eof()
        async with asyncio.timeout(20):
            while await reader.read(65536):
                pass  # ...then the server closes the connection
    finally:
        writer.close()
    assert await api.metric('agentstream_limit_rejections_total{code="payload_too_large"}') >= 1


async def test_a_chunked_body_is_refused_the_moment_it_passes_the_limit(api: ServedAPI) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
    try:
        writer.write(
            b"POST /v1/sessions/big/events HTTP/1.1\r\nhost: x\r\n"
            b"content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        chunk = b'{"type": "t", "data": {"x": "' + b"y" * 1000
        sent = 0
        while sent <= LIMIT:  # just past the limit, and the body is not finished
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sent += len(chunk)
        await writer.drain()
        status, headers, body = await read_response(reader)
        assert status == 413
        assert orjson.loads(body)["error"]["code"] == "payload_too_large"
        assert headers["connection"] == "close"
    finally:
        writer.close()


async def test_an_unfinished_stream_of_chunks_gets_its_answer_through_httpx(
    api: ServedAPI,
) -> None:
    async def body() -> AsyncIterator[bytes]:
        for _ in range(50):  # 50 KB, well past the limit, well within what is drained
            yield b" " * 1024

    async with api.client() as client:
        response = await client.post(
            "/v1/sessions/big/events", content=body(), headers={"content-type": "application/json"}
        )
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "payload_too_large"
        declared = await client.post(
            "/v1/sessions/big/events",
            json={"type": "t", "data": {"x": "y" * (2 * LIMIT)}},
        )
        assert declared.status_code == 413
        fits = await client.post("/v1/sessions/big/events", json={"type": "t", "data": {}})
        assert fits.status_code == 201, fits.text
        batch = {"events": [{"type": "t", "data": {"i": i}} for i in range(40)]}  # < 4 KB
        assert (await client.post("/v1/sessions/big/events", json=batch)).status_code == 201
