"""MongoDB or Redis stalled (SIGSTOP) under a real `app serve`: 503 `unavailable` with
Retry-After within REQUEST_TIMEOUT, never a 500 or a hang; /readyz down and back by itself; an
open stream goes on without loss once the database is back; a retried batch is stored once."""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from app.mongo import Collections
from app.settings import Secret, Settings
from embedded.redis import start_redis, stop
from support.serve import ServedAPI, app_serve
from support.servers import MongoSource
from support.sse import open_stream
from support.tcpproxy import TCPProxy
from support.waits import eventually_async

pytestmark = pytest.mark.timeout(180)

REQUEST_TIMEOUT = 2.0
MARGIN = 3.0  # scheduling slack on a loaded 2-core machine


@contextlib.contextmanager
def stopped(process: subprocess.Popen[bytes]) -> Iterator[None]:
    """The process frozen (SIGSTOP): its sockets accept, nothing answers. Continued on exit."""
    process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        process.send_signal(signal.SIGCONT)


@contextlib.asynccontextmanager
async def stallable_mongo(
    mongo: MongoSource, settings: Settings
) -> AsyncIterator[tuple[Settings, Callable[[], contextlib.AbstractContextManager[None]]]]:
    """Settings for the API and a way to stall its MongoDB: the embedded server's process is
    stopped with SIGSTOP; any other MongoDB (MONGO_URL) is reached through a TCP proxy that
    stops passing bytes."""
    if mongo.process is not None:
        process = mongo.process
        yield settings, lambda: stopped(process)
        return
    assert settings.mongo_url is not None
    url = settings.mongo_url.get()
    async with TCPProxy.for_url(url) as proxy:

        @contextlib.contextmanager
        def held() -> Iterator[None]:
            proxy.hold()
            try:
                yield
            finally:
                proxy.release()

        yield dataclasses.replace(settings, mongo_url=Secret(proxy.url_through(url))), held


@contextlib.asynccontextmanager
async def served(settings: Settings, tmp_path: Path, **extra: str) -> AsyncIterator[ServedAPI]:
    async with app_serve(
        settings, tmp_path, REQUEST_TIMEOUT=str(REQUEST_TIMEOUT), SSE_FEED="auto", **extra
    ) as api:
        yield api


async def timed(request: httpx.Request, client: httpx.AsyncClient) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await client.send(request)
    return response, time.monotonic() - started


def batch(prefix: str, count: int) -> dict[str, object]:
    return {
        "events": [
            {"type": "n", "data": {"i": i}, "event_id": f"{prefix}-{i}"} for i in range(count)
        ]
    }


async def stream_ends_unavailable(client: httpx.AsyncClient, token: str) -> None:
    """A stream opened while the database stalls says so and ends, releasing its slot; with a
    resume position to look up, it is refused with 503 before it starts."""
    async with open_stream(client, "stall") as dark:
        assert dark.response.status_code == 200
        events = await dark.rest()
    assert [e.event for e in events] == ["stream.reconnect"]
    assert events[0].data["reason"] == "unavailable"
    async with open_stream(client, "stall", last_event_id_header=token) as refused:
        assert refused.response.status_code == 503


async def test_a_stalled_database_answers_503_then_recovers_without_loss(
    settings: Settings, collections: Collections, mongo: MongoSource, tmp_path: Path
) -> None:
    async with (
        stallable_mongo(mongo, settings) as (through, stall),
        served(through, tmp_path) as api,
        api.client() as client,
    ):
        first = await client.post("/v1/sessions/stall/events", json=batch("before", 3))
        assert first.status_code == 201, first.text
        async with open_stream(client, "stall") as stream:
            got = await stream.take(3)
            with stall():
                for request in (
                    client.build_request("POST", "/v1/sessions/stall/events", json=batch("b", 5)),
                    client.build_request("GET", "/v1/sessions/stall/events"),
                    client.build_request("GET", "/v1/events/before-1"),
                ):
                    response, took = await timed(request, client)
                    assert response.status_code == 503, response.text
                    assert response.json()["error"]["code"] == "unavailable"
                    assert response.headers["retry-after"].isdigit()
                    assert int(response.headers["retry-after"]) >= 1
                    assert took < REQUEST_TIMEOUT + MARGIN, (request.url, took)
                await stream_ends_unavailable(client, got[0].id or "")
                ready, took = await timed(client.build_request("GET", "/readyz"), client)
                assert ready.status_code == 503
                assert ready.json()["checks"]["mongo"]["ok"] is False
                assert took < REQUEST_TIMEOUT + MARGIN
                assert (await client.get("/healthz")).status_code == 200

            async def ready_again() -> bool:
                return (await client.get("/readyz")).status_code == 200

            await eventually_async(ready_again, 60, "/readyz back to 200")
            retried = await client.post("/v1/sessions/stall/events", json=batch("b", 5))
            assert retried.status_code == 201, retried.text
            got += await stream.take(5, timeout=60)
        assert [e.data["event_id"] for e in got] == [f"before-{i}" for i in range(3)] + [
            f"b-{i}" for i in range(5)
        ]
        ids = [f"b-{i}" for i in range(5)]
        stored = [d["event_id"] async for d in collections.events.find({"event_id": {"$in": ids}})]
        assert sorted(stored) == ids  # each exactly once
        assert await api.metric('agentstream_unavailable_total{dependency="mongo"}') >= 3
        assert await api.metric("agentstream_sse_connections") == 0  # every stream released
    assert "Traceback" not in api.output()


async def test_a_stalled_redis_answers_503_for_a_new_run(
    settings: Settings, collections: Collections, tmp_path: Path
) -> None:
    process, url = start_redis()
    try:
        own = dataclasses.replace(settings, redis_url=Secret(url))
        async with served(own, tmp_path) as api, api.client() as client:
            with stopped(process):
                request = client.build_request(
                    "POST", "/v1/sessions/r/runs", json={"agent": "echo", "input": {"text": "x"}}
                )
                response, took = await timed(request, client)
                assert response.status_code == 503, response.text
                assert response.json()["error"]["code"] == "unavailable"
                assert int(response.headers["retry-after"]) >= 1
                assert took < REQUEST_TIMEOUT + MARGIN
                ready = await client.get("/readyz")
                assert ready.status_code == 503
                assert ready.json()["checks"]["redis"]["ok"] is False

            async def ready_again() -> bool:
                return (await client.get("/readyz")).status_code == 200

            await eventually_async(ready_again, 30, "/readyz back to 200")
            again = await client.post(
                "/v1/sessions/r/runs", json={"agent": "echo", "input": {"text": "x"}}
            )
            assert again.status_code == 202, again.text
    finally:
        stop(process)
