"""Connection storms on a real `app serve`: many clients at once against the stream cap, and
slowloris clients that send their headers a byte at a time (HEADER_TIMEOUT)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from bench.storm import HealthProbe, leave, storm, summary
from support.serve import ServedAPI, module_settings, serving
from support.waits import eventually_async

pytestmark = pytest.mark.timeout(180)

CAP = 50
CLIENTS = 150
HEADER_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def api(
    mongo_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedAPI]:
    settings = module_settings(mongo_url, redis_url)
    with serving(
        settings,
        tmp_path_factory.mktemp("storm"),
        SSE_MAX_CONNECTIONS=str(CAP),
        SSE_MAX_CONNECTIONS_PER_SUBJECT=str(CLIENTS),
        HEADER_TIMEOUT=str(HEADER_TIMEOUT),
    ) as served:
        yield served


async def none_open(api: ServedAPI) -> bool:
    return await api.metric("agentstream_sse_connections") == 0


async def test_a_storm_gets_the_cap_streaming_and_quick_503s_for_the_rest(api: ServedAPI) -> None:
    probe = HealthProbe(api.url)
    probing = asyncio.create_task(probe.run())
    started = time.monotonic()
    try:
        arrivals = await storm(api.port, CLIENTS, within=0.0)  # all at once
        result = summary(arrivals, time.monotonic() - started)
        assert await api.metric("agentstream_sse_connections") == CAP
    finally:
        probe.stop()
        await probing
        leave(arrivals)
    assert (result["accepted"], result["over_capacity"], result["other"]) == (
        CAP,
        CLIENTS - CAP,
        0,
    )
    assert probe.failures == 0
    assert probe.latencies_us, "/healthz was asked during the storm"
    assert max(probe.latencies_us) < 5_000_000  # answered throughout; BENCHMARKS.md has p99
    await eventually_async(lambda: none_open(api), 30, "every stream released")
    rejected = await api.metric('agentstream_limit_rejections_total{code="over_capacity"}')
    assert rejected == CLIENTS - CAP


async def test_slowloris_clients_are_dropped_at_the_header_timeout(api: ServedAPI) -> None:
    request = b"GET /v1/sessions/loris/stream HTTP/1.1\r\nhost: x\r\nx-pad: " + b"p" * 200
    sockets = [await asyncio.open_connection("127.0.0.1", api.port) for _ in range(20)]
    before = await api.metric("agentstream_header_timeouts_total")
    started = time.monotonic()
    closed_at: list[float] = []

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One byte each time another request has been answered: never the whole headers."""
        for byte in request:
            if reader.at_eof():
                break
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except OSError:
                break
            async with api.client() as client:  # other requests are served meanwhile
                assert (await client.get("/healthz")).status_code == 200
            if reader.at_eof() or writer.is_closing():
                break
        async with asyncio.timeout(30):
            assert await reader.read() == b""  # closed by the server, no answer
        closed_at.append(time.monotonic() - started)
        writer.close()

    await asyncio.gather(*(trickle(r, w) for r, w in sockets))
    assert len(closed_at) == 20
    assert max(closed_at) < HEADER_TIMEOUT + 10
    after = await api.metric("agentstream_header_timeouts_total")
    assert after - before == 20
