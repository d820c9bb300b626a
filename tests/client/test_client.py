"""The Python client against a real API: JSON calls, and streams that resume by themselves."""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from agentstream_client import APIError, Client, Event, SessionStream, Unreachable
from agentstream_client.stream import since_param
from support.servers import RunningAPI, serving
from support.tcpproxy import TCPProxy

pytestmark = pytest.mark.timeout(90)


async def take(events: SessionStream, count: int, timeout: float = 30.0) -> list[Event]:
    taken: list[Event] = []
    async with asyncio.timeout(timeout):
        while len(taken) < count:
            taken.append(await anext(events))
    return taken


async def append(client: Client, session: str, count: int, start: int = 0) -> list[str]:
    events = [{"type": "n", "data": {"i": start + i}} for i in range(count)]
    return [e["id"] for e in await client.append_batch(session, events)]


async def test_every_event_arrives_once_in_order_across_dropped_connections(
    api: RunningAPI, proxy: TCPProxy, proxy_url: str
) -> None:
    async with Client(api.url) as writer, Client(proxy_url) as reader:
        written = await append(writer, "drops", 200)
        async with reader.stream("drops") as events:
            got = await take(events, 50)
            proxy.cut()  # mid-replay: some frames were in flight
            got += await take(events, 150)
            written += await append(writer, "drops", 30, start=200)
            got += await take(events, 10)
            proxy.cut()  # mid-live
            written += await append(writer, "drops", 20, start=230)
            got += await take(events, 40)
            assert events.connections >= 3
            assert events.last_event_id == written[-1]
    assert [e.id for e in got] == written
    assert [e.data["i"] for e in got] == list(range(250))
    assert {e.type for e in got} == {"n"}
    assert all(not e.control for e in got)


async def test_a_stream_goes_on_after_each_server_time_limit(short_stream_api: RunningAPI) -> None:
    async with Client(short_stream_api.url) as client, client.stream("limits") as events:
        written: list[str] = []
        got: list[Event] = []
        while events.connections < 4:
            written += await append(client, "limits", 5, start=len(written))
            got += await take(events, 5)
        assert events.last_reason == "timeout"
    assert [e.id for e in got] == written


async def test_a_stream_starts_after_an_id_or_at_a_time(api: RunningAPI) -> None:
    async with Client(api.url) as client:
        stored = []
        for i in range(6):
            stored += await client.append_batch("starts", [{"type": "n", "data": {"i": i}}])
        ids = [e["id"] for e in stored]
        async with client.stream("starts", last_event_id=ids[2]) as events:
            assert [e.id for e in await take(events, 3)] == ids[3:]
        since = stored[3]["timestamp"]
        expected = [e["id"] for e in stored if e["timestamp"] >= since]
        async with client.stream("starts", since=since) as events:
            assert [e.id for e in await take(events, len(expected))] == expected
        with pytest.raises(ValueError, match="not both"):
            client.stream("starts", last_event_id=ids[0], since=since)


async def test_expired_history_is_reported_then_the_stream_goes_on(api: RunningAPI) -> None:
    async with Client(api.url) as client:
        ids = await append(client, "expired", 5)
        # What the TTL index does after EVENT_RETENTION_DAYS: the oldest events are gone.
        await api.services.collections.events.delete_many(
            {"session_id": "expired", "seq": {"$lte": 3}}
        )
        async with client.stream("expired", last_event_id=ids[0]) as events:
            lost, *rest = await take(events, 3)
            assert lost.type == "stream.history_lost"
            assert lost.control
            assert lost.id is None
            assert lost.data["reason"] == "expired"
            assert lost.data["resumed_after"] == ids[2]
            assert [e.id for e in rest] == ids[3:]
            assert lost.to_json() == {"type": "stream.history_lost", "data": lost.data}


async def test_json_calls_and_their_errors(api: RunningAPI) -> None:
    async with Client(api.url) as client:
        one = await client.append("calls", "tool.call", {"name": "search"}, trace_id="t1")
        again = await client.append(
            "calls", "tool.call", {"name": "search"}, trace_id="t1", event_id=one["event_id"]
        )
        assert again["id"] == one["id"]  # idempotent on event_id: an exact retry
        with pytest.raises(APIError) as changed:  # the same id with another payload
            await client.append("calls", "tool.call", {"x": 1}, event_id=one["event_id"])
        assert (changed.value.status, changed.value.code) == (409, "conflict")
        event = await client.get_event(one["event_id"])
        assert (event["type"], event["trace_id"], event["data"]) == (
            "tool.call",
            "t1",
            {"name": "search"},
        )
        names = {agent["name"]: agent["description"] for agent in await client.agents()}
        assert names["echo"] == "stream input.text back in chunks"
        assert names["boom"] == "Writes one delta, then fails."
        started = await client.start_run("calls", "echo", {"text": "hi"}, run_id="calls-run-1")
        assert started["run_id"] == "calls-run-1"
        run = await client.get_run("calls-run-1")
        assert (run["status"], run["agent"], run["session_id"]) == ("queued", "echo", "calls")
        cancelled = await client.cancel_run("calls-run-1")
        assert cancelled["status"] == "cancelled"
        with pytest.raises(APIError) as conflict:
            await client.cancel_run("calls-run-1")
        assert (conflict.value.status, conflict.value.code) == (409, "conflict")
        with pytest.raises(APIError) as unknown:
            await client.start_run("calls", "nope", {})
        assert (unknown.value.status, unknown.value.code) == (400, "unknown_agent")
        with pytest.raises(APIError) as missing:
            await client.get_run("no-such-run")
        assert missing.value.status == 404
        async with client.stream("calls", last_event_id="garbage") as events:
            with pytest.raises(APIError) as refused:
                await take(events, 1)
        assert (refused.value.status, refused.value.code) == (400, "bad_request")


async def test_an_api_that_does_not_answer_is_unreachable() -> None:
    async with Client("http://127.0.0.1:9") as client:
        with pytest.raises(Unreachable, match="did not answer"):
            await client.get_run("r1")


def test_the_token_goes_in_the_authorization_header_and_may_be_refreshed() -> None:
    assert Client("http://x", token="abc").headers() == {"Authorization": "Bearer abc"}
    tokens = iter(["one", "two"])
    refreshing = Client("http://x", token=lambda: next(tokens))
    assert refreshing.headers()["Authorization"] == "Bearer one"
    assert refreshing.headers()["Authorization"] == "Bearer two"
    assert Client("http://x").headers() == {}


def test_since_is_sent_as_the_api_takes_it() -> None:
    moment = datetime.datetime(2026, 11, 30, 4, 16, 23, 644000, tzinfo=datetime.UTC)
    assert since_param(moment) == "2026-11-30T04:16:23.644Z"
    assert since_param(moment.replace(tzinfo=None)) == "2026-11-30T04:16:23.644Z"
    assert since_param(1764476183644) == "1764476183644"


# A stand-in for an API at capacity: 503 then 429, each with Retry-After, then one event.


async def test_a_busy_api_is_retried_after_its_retry_after() -> None:
    seen: list[tuple[str | None, float]] = []

    async def stream(request: Request) -> Response:
        seen.append((request.headers.get("last-event-id"), time.monotonic()))
        if len(seen) == 1:
            body = {"error": {"code": "over_capacity", "message": "full"}}
            return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})
        if len(seen) == 2:
            body = {"error": {"code": "too_many_streams", "message": "slow down"}}
            return JSONResponse(body, status_code=429, headers={"Retry-After": "1"})

        async def frames() -> AsyncIterator[bytes]:
            yield b"retry: 50\n\n"
            yield b'id: 7.0000abcd\nevent: n\ndata: {"id":"7.0000abcd","type":"n","data":{}}\n\n'

        return StreamingResponse(frames(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/v1/sessions/{sid}/stream", stream)])
    async with serving(app) as url, Client(url) as client, client.stream("busy") as events:
        first = await take(events, 1)
        assert [e.id for e in first] == ["7.0000abcd"]
        assert events.retry_ms == 50
    assert len(seen) == 3
    assert seen[1][1] - seen[0][1] >= 1.0
    assert seen[2][1] - seen[1][1] >= 1.0
    assert [header for header, _ in seen] == [None, None, None]
