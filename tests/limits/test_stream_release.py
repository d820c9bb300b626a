"""A stream's slot is released the moment it ends, whatever ends it. The server allows one
stream (SSE_MAX_CONNECTIONS=1): after each way of ending, the next stream is accepted."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from support.serve import ServedAPI, module_settings, serving
from support.sse import open_stream
from support.waits import eventually_async

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def api(
    mongo_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedAPI]:
    settings = module_settings(mongo_url, redis_url)
    with serving(
        settings,
        tmp_path_factory.mktemp("release"),
        SSE_MAX_CONNECTIONS="1",
        SSE_TIMEOUT="3",
        SSE_BUFFER_EVENTS="3",
    ) as served:
        yield served


async def next_stream_accepted(api: ServedAPI, client: httpx.AsyncClient) -> None:
    async def accepted() -> bool:
        async with open_stream(client, "probe") as probe:
            assert probe.response.status_code in (200, 503)
            return probe.response.status_code == 200

    await eventually_async(accepted, 10, "the slot to be released")
    await eventually_async(lambda: _none_open(api), 10, "the gauge back to 0")


async def _none_open(api: ServedAPI) -> bool:
    return await api.metric("agentstream_sse_connections") == 0


async def post(client: httpx.AsyncClient, session: str, count: int) -> None:
    events = [{"type": "n", "data": {"i": i}} for i in range(count)]
    response = await client.post(f"/v1/sessions/{session}/events", json={"events": events})
    assert response.status_code == 201, response.text


async def test_released_when_the_client_leaves(api: ServedAPI) -> None:
    async with api.client() as client:
        await post(client, "leave", 2)
        async with open_stream(client, "leave") as stream:
            await stream.take(2)
            async with open_stream(client, "leave") as second:
                assert second.response.status_code == 503  # the one slot is taken
        await next_stream_accepted(api, client)


async def test_released_at_the_time_limit(api: ServedAPI) -> None:
    async with api.client() as client, open_stream(client, "limit") as stream:
        events = [e async for e in stream.events()]
        assert events[-1].event == "stream.reconnect"
        assert events[-1].data["reason"] == "timeout"
        await next_stream_accepted(api, client)


async def test_released_when_the_consumer_is_too_slow(api: ServedAPI) -> None:
    async with api.client() as client:
        await post(client, "slow", 1)
        async with open_stream(client, "slow") as stream:
            await stream.take(1)  # caught up: from here on, events come live from the hub
            await post(client, "slow", 20)  # one batch: more than the 3 buffered events
            events = await stream.rest()
        assert events[-1].event == "stream.reconnect"
        assert events[-1].data["reason"] in ("slow_consumer", "timeout")
        await next_stream_accepted(api, client)
    assert await api.metric("agentstream_slow_client_disconnects_total") >= 1


async def test_released_when_the_stream_cannot_start(api: ServedAPI) -> None:
    async with api.client() as client:
        bad = await client.get("/v1/sessions/bad/stream", headers={"Last-Event-ID": "not-a-token"})
        assert bad.status_code == 400  # refused after the slot was taken: it is given back
        await next_stream_accepted(api, client)
