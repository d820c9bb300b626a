"""Failures around the stream: a broken feed, slow and vanished clients, shutdown, time limits."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import socket
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest
from pymongo import monitoring
from pymongo.errors import OperationFailure

from app.settings import FeedMode, Secret, Settings
from support.servers import MongoSource, RunningAPI, running_api
from support.sse import open_stream
from support.tcpproxy import TCPProxy
from support.waits import eventually, eventually_async

pytestmark = pytest.mark.timeout(120)


async def post(client: httpx.AsyncClient, session: str, count: int, start: int = 0) -> list[str]:
    events = [{"type": "n", "data": {"i": start + i}} for i in range(count)]
    body = {"events": events} if count > 1 else events[0]
    response = await client.post(f"/v1/sessions/{session}/events", json=body)
    assert response.status_code == 201, response.text
    return [e["id"] for e in response.json()["events"]]


@contextlib.asynccontextmanager
async def api_behind_proxy(
    settings: Settings, api: RunningAPI, **changes: Any
) -> AsyncIterator[tuple[TCPProxy, RunningAPI]]:
    """A second API process on `api`'s database that reaches MongoDB through a TCP proxy the
    test can cut or pause; writes made through `api` go to MongoDB directly."""
    assert settings.mongo_url is not None
    url = settings.mongo_url.get()
    async with TCPProxy.for_url(url) as proxy:
        proxied = dataclasses.replace(
            settings,
            mongo_url=Secret(proxy.url_through(url)),
            mongo_db=api.services.settings.mongo_db,
            **changes,
        )
        async with running_api(proxied) as streaming:
            yield proxy, streaming


async def test_a_broken_feed_loses_and_duplicates_nothing(
    feed_settings: Settings, api: RunningAPI
) -> None:
    """Writes go through `api` (direct); the streaming API reads MongoDB through a proxy that
    drops every connection mid-stream, like a failover."""
    async with (
        api_behind_proxy(feed_settings, api) as (proxy, streaming),
        httpx.AsyncClient(base_url=api.url) as writer,
        httpx.AsyncClient(base_url=streaming.url) as reader,
        open_stream(reader, "faulty") as stream,
    ):
        written = await post(writer, "faulty", 3)
        got = await stream.take(3)
        proxy.cut()
        written += await post(writer, "faulty", 4, start=3)
        proxy.cut()
        written += await post(writer, "faulty", 3, start=7)
        got += await stream.take(7, timeout=60)
    assert [e.id for e in got] == written
    assert [e.data["data"]["i"] for e in got] == list(range(10))


async def test_lost_change_stream_history_is_caught_up_from_the_collection(
    settings: Settings, api: RunningAPI, mongo: MongoSource
) -> None:
    """The feed is cut off while events are written and the server's change history is lost
    (code 286 on resume): it reopens the stream and reads the gap from the collection."""
    if mongo.process is None:
        pytest.skip("needs the embedded server's fault injection (SIGUSR2 drops its history)")
    behind = api_behind_proxy(settings, api, sse_feed=FeedMode.CHANGE_STREAM)
    async with (
        behind as (proxy, streaming),
        httpx.AsyncClient(base_url=api.url) as writer,
        httpx.AsyncClient(base_url=streaming.url) as reader,
        open_stream(reader, "amnesia") as stream,
    ):
        written = await post(writer, "amnesia", 2)
        got = await stream.take(2)
        probe = await api.services.collections.events.watch(max_await_time_ms=10)
        token = probe.resume_token
        await probe.close()
        proxy.pause()
        written += await post(writer, "amnesia", 3, start=2)
        mongo.process.send_signal(signal.SIGUSR2)  # the server forgets its change history
        await eventually_async(lambda: history_lost(api, token), what="history dropped")
        written += await post(writer, "amnesia", 1, start=5)
        proxy.resume()
        got += await stream.take(4, timeout=60)
        resumes = streaming.services.metrics.change_stream_resumes
        assert resumes.labels("history_lost")._value.get() >= 1
    assert [e.id for e in got] == written


async def history_lost(api: RunningAPI, token: Mapping[str, Any] | None) -> bool:
    try:
        stream = await api.services.collections.events.watch(resume_after=token)
        await stream.close()
    except OperationFailure as exc:
        return exc.code == 286
    return False


async def test_a_slow_consumer_is_closed_with_a_resumable_position(
    feed_settings: Settings,
) -> None:
    small = dataclasses.replace(feed_settings, sse_buffer_events=3)
    async with running_api(small) as api, httpx.AsyncClient(base_url=api.url) as client:
        async with open_stream(client, "slow") as stream:
            await eventually(lambda: api.services.hub.subscribers == 1)
            await eventually(lambda: "slow" in api.services.hub.positions(), what="live")
            written = await post(client, "slow", 20)  # one batch: the feed publishes 20 at once
            events = [e async for e in stream.events()]
        assert events[-1].event == "stream.reconnect"
        assert events[-1].data["reason"] == "slow_consumer"
        delivered = [e.id for e in events[:-1]]
        assert len(delivered) <= 3
        assert events[-1].data["last_event_id"] == (delivered[-1] if delivered else None)
        resume = {"last_event_id": delivered[-1]} if delivered else {}
        async with open_stream(client, "slow", **resume) as again:
            rest = await again.take(20 - len(delivered))
        assert delivered + [e.id for e in rest] == written
        assert api.services.metrics.slow_client_disconnects._value.get() == 1
        await eventually(lambda: api.services.hub.subscribers == 0)


async def test_a_client_that_stops_reading_is_dropped(settings: Settings) -> None:
    quick = dataclasses.replace(
        settings, sse_send_timeout=0.5, sse_buffer_events=100_000, event_max_bytes=1 << 20
    )
    async with running_api(quick) as api, httpx.AsyncClient(base_url=api.url) as client:
        port = int(api.url.rsplit(":", 1)[1])
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"GET /v1/sessions/stuck/stream HTTP/1.1\r\nhost: x\r\n\r\n")
        try:
            await eventually(lambda: api.services.hub.subscribers == 1)
            big = "x" * 900_000
            for _ in range(20):  # up to 18 MB that the client never reads; the kernel buffers 4 MB
                if api.services.hub.subscribers == 0:
                    break
                response = await client.post(
                    "/v1/sessions/stuck/events", json={"type": "big", "data": {"x": big}}
                )
                assert response.status_code == 201
            await eventually(lambda: api.services.hub.subscribers == 0, timeout=20, what="drop")
        finally:
            sock.close()
    assert api.services.metrics.slow_client_disconnects._value.get() >= 1


async def test_disconnected_clients_leave_no_task_behind(feed_api: RunningAPI) -> None:
    hub = feed_api.services.hub
    async with httpx.AsyncClient(base_url=feed_api.url) as client:
        await post(client, "gone", 2)
        baseline = len(asyncio.all_tasks())
        for _ in range(3):
            async with open_stream(client, "gone") as stream:
                await stream.take(2)
                await eventually(lambda: hub.subscribers == 1)
        await eventually(lambda: hub.subscribers == 0, what="release")
        await eventually(lambda: len(asyncio.all_tasks()) <= baseline, what="tasks end")
    assert hub.sessions() == []


async def test_the_live_path_costs_the_same_for_200_subscribers_as_for_1(
    feed_settings: Settings,
) -> None:
    commands: list[str] = []

    class Count(monitoring.CommandListener):
        def started(self, event: monitoring.CommandStartedEvent) -> None:
            commands.append(event.command_name)

        def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
            pass

        def failed(self, event: monitoring.CommandFailedEvent) -> None:
            pass

    async def live_commands(api: RunningAPI, subscribers: int) -> int:
        async with httpx.AsyncClient(
            base_url=api.url, limits=httpx.Limits(max_connections=None)
        ) as client:
            streams = [open_stream(client, f"load{n % 5}") for n in range(subscribers)]
            opened = [await s.__aenter__() for s in streams]
            await eventually(lambda: api.services.hub.subscribers == subscribers, timeout=60)
            sessions = min(subscribers, 5)
            await eventually(lambda: len(api.services.hub.positions()) == sessions, timeout=60)
            commands.clear()
            await post(client, "load0", 1)
            await asyncio.gather(*(s.take(1, timeout=30) for s in opened[::5]))
            # The window: until the feed itself has made 5 more reads of its own (polls, or
            # the change stream's getMores). Any per-client read would land in it too.
            polls = api.services.metrics.poll_queries

            def feed_reads() -> float:
                if api.services.feed.mode == "poll":
                    return float(polls._value.get())
                return float(commands.count("getMore"))  # clients never cause a getMore

            start = feed_reads()
            await eventually(lambda: feed_reads() >= start + 5, timeout=30)
            counted = len([c for c in commands if c in ("find", "getMore", "aggregate")])
            for s in streams:
                await s.__aexit__(None, None, None)
            return counted

    # 200 streams from one address: over SSE_MAX_CONNECTIONS_PER_SUBJECT (100) by default
    settings = dataclasses.replace(
        feed_settings, sse_poll_interval=0.1, sse_max_connections_per_subject=1000
    )
    async with running_api(settings, mongo_listeners=[Count()]) as api:
        one = await live_commands(api, 1)
        many = await live_commands(api, 200)
    assert one > 0
    assert many <= one * 1.5 + 3, (one, many)


async def test_a_stream_ends_after_sse_timeout_with_a_reconnect_event(settings: Settings) -> None:
    short = dataclasses.replace(settings, sse_timeout=1.0, sse_heartbeat=0.2)
    async with running_api(short) as api, httpx.AsyncClient(base_url=api.url) as client:
        written = await post(client, "short", 2)
        async with open_stream(client, "short") as stream:
            events = [e async for e in stream.events()]
    assert [e.id for e in events[:2]] == written
    assert events[2].event == "stream.reconnect"
    assert events[2].data == {"reason": "timeout", "last_event_id": written[-1]}
    assert "keep-alive" in stream.comments


async def test_shutdown_ends_open_streams_promptly(settings: Settings) -> None:
    patient = dataclasses.replace(settings, shutdown_grace=30.0)
    async with (
        running_api(patient) as api,
        httpx.AsyncClient(base_url=api.url) as client,
        open_stream(client, "bye") as stream,
    ):
        await eventually(lambda: api.services.hub.subscribers == 1)
        api.server.should_exit = True
        async with asyncio.timeout(5):
            events = [e async for e in stream.events()]
    assert events[-1].event == "stream.reconnect"
    assert events[-1].data["reason"] == "shutdown"


async def test_a_stream_that_cannot_reach_the_database_says_so_and_ends(
    settings: Settings, api: RunningAPI
) -> None:
    behind = api_behind_proxy(settings, api, sse_feed=FeedMode.POLL)
    async with behind as (proxy, streaming), httpx.AsyncClient(base_url=streaming.url) as reader:
        proxy.pause()  # MongoDB becomes unreachable for this API process
        async with open_stream(reader, "dark") as stream:
            events = [e async for e in stream.events()]
        proxy.resume()
    assert [e.event for e in events] == ["stream.reconnect"]
    assert events[0].data == {"reason": "unavailable", "last_event_id": None}
