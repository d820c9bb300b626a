"""Runs over HTTP, end to end: real uvicorn, a real worker, the SSE stream, bad input, cancel."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.settings import Secret, Settings
from support.servers import RunningAPI
from support.sse import Event, Stream, open_stream
from support.worker import ARQ_DB, burst, flush, queue_length, running_worker, with_db

pytestmark = pytest.mark.timeout(60)

TERMINAL = {"run.completed", "run.failed", "run.cancelled", "run.timed_out"}


@pytest.fixture
async def settings(settings: Settings) -> AsyncIterator[Settings]:
    """The suite's settings on a Redis database of this test's own."""
    assert settings.redis_url is not None
    url = with_db(settings.redis_url.get(), ARQ_DB)
    await flush(url)
    yield dataclasses.replace(settings, redis_url=Secret(url))
    await flush(url)


@pytest.fixture
async def client(api: RunningAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as found:
        yield found


async def until_end(stream: Stream, timeout: float = 20.0) -> list[Event]:
    """Events of the stream up to and including a run's terminal event."""
    seen: list[Event] = []
    async with asyncio.timeout(timeout):
        while not seen or seen[-1].event not in TERMINAL:
            seen.extend(await stream.take(1, timeout=timeout))
    return seen


async def until(stream: Stream, kind: str, timeout: float = 20.0) -> list[Event]:
    seen: list[Event] = []
    async with asyncio.timeout(timeout):
        while not seen or seen[-1].event != kind:
            seen.extend(await stream.take(1, timeout=timeout))
    return seen


async def post_run(client: httpx.AsyncClient, session: str, body: Any) -> httpx.Response:
    return await client.post(f"/v1/sessions/{session}/runs", json=body)


async def test_a_run_streams_to_a_subscriber_end_to_end(
    settings: Settings, client: httpx.AsyncClient
) -> None:
    text = "Hello, streaming world!"
    async with running_worker(settings), open_stream(client, "e2e") as stream:
        response = await post_run(
            client, "e2e", {"agent": "echo", "input": {"text": text, "chunk": 4, "delay": 0.01}}
        )
        assert response.status_code == 202, response.text
        run_id = response.json()["run_id"]
        trace_id = response.json()["trace_id"]
        assert response.headers["location"] == f"/v1/runs/{run_id}"
        events = await until_end(stream)
    kinds = [e.event for e in events]
    deltas = [e.data["data"]["delta"] for e in events if e.event == "message.delta"]
    middle = ["message.delta"] * 6
    assert kinds == ["run.queued", "run.started", *middle, "message.completed", "run.completed"]
    assert "".join(deltas) == text
    assert deltas == [text[i : i + 4] for i in range(0, len(text), 4)]
    assert events[-2].data["data"] == {
        "message_id": f"{run_id}.m1",
        "role": "assistant",
        "content": text,
    }
    assert {e.data["trace_id"] for e in events} == {trace_id}
    assert {e.data["session_id"] for e in events} == {"e2e"}
    assert events[0].data["data"] == {"run_id": run_id, "agent": "echo"}

    run = (await client.get(f"/v1/runs/{run_id}")).json()
    assert run["status"] == "succeeded"
    assert run["error"] is None
    assert run["trace_id"] == trace_id
    assert run["agent"] == "echo"
    assert run["session_id"] == "e2e"
    assert run["created_at"] <= run["started_at"] <= run["ended_at"]
    assert run["ended_at"].endswith("Z")

    messages = (await client.get("/v1/sessions/e2e/messages")).json()["messages"]
    assert messages == [
        {
            "message_id": f"{run_id}.m1",
            "session_id": "e2e",
            "parent_id": None,
            "role": "assistant",
            "content": text,
            "trace_id": trace_id,
            "timestamp": messages[0]["timestamp"],
        }
    ]


@pytest.mark.parametrize(
    ("body", "status", "code", "message"),
    [
        ({"agent": "nope", "input": {}}, 400, "unknown_agent", "unknown agent 'nope'"),
        ({"agent": "echo"}, 400, "bad_request", "input is required"),
        ({"input": {"text": "x"}}, 400, "bad_request", "agent is required"),
        ({"agent": "echo", "input": "hi"}, 400, "bad_request", "input must be a JSON object"),
        ({"agent": "echo", "input": ["hi"]}, 400, "bad_request", "input must be a JSON object"),
        ({"agent": {"name": "echo"}, "input": {}}, 400, "bad_request", "agent must be a string"),
        (
            {"agent": "echo", "input": {"text": "x"}, "trace_id": {}},
            400,
            "bad_request",
            "trace_id must be a string",
        ),
        (
            {"agent": "echo", "input": {"text": {"a": 1}}},
            400,
            "invalid_input",
            "input.text must be a string, got an object",
        ),
        ({"agent": "echo", "input": {"text": "x", "chunk": 0}}, 400, "invalid_input", "chunk"),
        (
            {"agent": "echo", "input": {"text": "x" * 66_000}},
            413,
            "payload_too_large",
            "EVENT_MAX_BYTES",
        ),
        ({"agent": "echo", "input": {"$where": 1}}, 400, "bad_request", "starts with '$'"),
        ({"agent": "echo", "input": {}, "priority": 1}, 400, "bad_request", "unknown fields"),
        ({"agent": "echo", "input": {"text": "x"}, "run_id": "a/b"}, 400, "bad_request", "run_id"),
        (["echo"], 400, "bad_request", "must be a JSON object"),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_enqueued(
    settings: Settings,
    api: RunningAPI,
    client: httpx.AsyncClient,
    body: Any,
    status: int,
    code: str,
    message: str,
) -> None:
    response = await post_run(client, "bad", body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert message in error["message"]
    assert await queue_length(settings) == 0
    assert await api.services.collections.runs.count_documents({}) == 0
    assert await api.services.collections.events.count_documents({}) == 0


async def test_a_body_that_is_not_json_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/sessions/s/runs", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    response = await client.post("/v1/sessions/bad id/runs", json={"agent": "echo", "input": {}})
    assert response.status_code == 400


async def test_cancelling_a_queued_run_ends_it_and_it_never_starts(
    settings: Settings, client: httpx.AsyncClient, api: RunningAPI
) -> None:
    response = await post_run(client, "q", {"agent": "echo", "input": {"text": "never"}})
    run_id = response.json()["run_id"]
    assert (await client.get(f"/v1/runs/{run_id}")).json()["status"] == "queued"
    response = await client.post(f"/v1/runs/{run_id}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    again = await client.post(f"/v1/runs/{run_id}/cancel")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"
    assert "already ended: cancelled" in again.json()["error"]["message"]
    worker = await burst(settings)
    assert worker.jobs_complete == 0
    async with open_stream(client, "q") as stream:
        events = await until_end(stream, timeout=5)
    assert [e.event for e in events] == ["run.queued", "run.cancelled"]
    run = (await client.get(f"/v1/runs/{run_id}")).json()
    assert run["status"] == "cancelled"
    assert run["started_at"] is None


async def test_cancelling_a_running_run_ends_it_within_seconds(
    settings: Settings, client: httpx.AsyncClient
) -> None:
    async with running_worker(settings), open_stream(client, "c") as stream:
        body = {"agent": "echo", "input": {"text": "z" * 300, "delay": 0.1}}  # 30 s
        run_id = (await post_run(client, "c", body)).json()["run_id"]
        await until(stream, "message.delta")
        response = await client.post(f"/v1/runs/{run_id}/cancel")
        assert response.status_code == 202
        assert response.json()["status"] == "running"
        events = await until_end(stream, timeout=5)
    assert events[-1].event == "run.cancelled"
    assert events[-1].data["data"] == {"run_id": run_id, "status": "cancelled"}
    run = (await client.get(f"/v1/runs/{run_id}")).json()
    assert run["status"] == "cancelled"
    assert (await client.post(f"/v1/runs/{run_id}/cancel")).status_code == 409


async def test_a_cancelled_run_closes_the_message_it_was_streaming(
    settings: Settings, client: httpx.AsyncClient
) -> None:
    async with running_worker(settings), open_stream(client, "half") as stream:
        body = {"agent": "echo", "input": {"text": "abcdefghij" * 30, "delay": 0.1}}  # 30 s
        run_id = (await post_run(client, "half", body)).json()["run_id"]
        events = await until(stream, "message.delta")
        events += await until(stream, "message.delta")
        assert (await client.post(f"/v1/runs/{run_id}/cancel")).status_code == 202
        events += await until_end(stream, timeout=10)
    kinds = [e.event for e in events]
    assert kinds[-2:] == ["message.completed", "run.cancelled"]
    said = "".join(e.data["data"]["delta"] for e in events if e.event == "message.delta")
    completed = events[-2].data["data"]
    assert completed == {
        "message_id": f"{run_id}.m1",
        "role": "assistant",
        "content": said,
        "incomplete": True,
        "reason": "cancelled",
    }
    assert 2 <= len(said) < 300
    messages = (await client.get("/v1/sessions/half/messages")).json()["messages"]
    assert [(m["message_id"], m["content"], m["incomplete"], m["reason"]) for m in messages] == [
        (f"{run_id}.m1", said, True, "cancelled")
    ]


async def test_unknown_runs_are_404(client: httpx.AsyncClient) -> None:
    for response in (
        await client.get("/v1/runs/nope"),
        await client.post("/v1/runs/nope/cancel"),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert (await client.get("/v1/runs/bad id")).status_code == 400


async def test_posting_a_run_id_twice_starts_one_run(
    settings: Settings, client: httpx.AsyncClient, api: RunningAPI
) -> None:
    body = {"agent": "echo", "input": {"text": "once"}, "run_id": "client-run-1", "trace_id": "t1"}
    first = await post_run(client, "twice", body)
    second = await post_run(client, "twice", body)
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json() == {"run_id": "client-run-1", "trace_id": "t1"}
    assert await queue_length(settings) == 1
    assert await api.services.collections.events.count_documents({}) == 1
    elsewhere = await post_run(client, "other", body)
    assert elsewhere.status_code == 409


async def test_messages_are_listed_in_order(client: httpx.AsyncClient, api: RunningAPI) -> None:
    from app.store.messages import MessageStore

    store = MessageStore(api.services.collections)
    for i in range(3):
        await store.put(message_id=f"m{i}", session_id="talk", role="user", content=str(i))
    await store.put(message_id="m0", session_id="talk", role="user", content="changed")
    page = (await client.get("/v1/sessions/talk/messages", params={"limit": "2"})).json()
    assert [(m["message_id"], m["content"]) for m in page["messages"]] == [("m0", "0"), ("m1", "1")]
    assert (await client.get("/v1/sessions/talk/messages?limit=0")).status_code == 400
    assert (await client.get("/v1/sessions/empty/messages")).json() == {"messages": []}


async def test_posting_again_repairs_a_run_whose_enqueue_was_lost(
    settings: Settings, client: httpx.AsyncClient, api: RunningAPI
) -> None:
    from app.store.runs import RunStore

    # As if an earlier request died after recording the run, before its event and its job.
    await RunStore(api.services.collections).ensure("lost-1", "lost", "echo", "t-lost")
    body = {"agent": "echo", "input": {"text": "found"}, "run_id": "lost-1"}
    response = await post_run(client, "lost", body)
    assert response.status_code == 202
    assert response.json() == {"run_id": "lost-1", "trace_id": "t-lost"}
    assert await queue_length(settings) == 1
    async with running_worker(settings), open_stream(client, "lost") as stream:
        events = await until_end(stream)
    assert [e.event for e in events][:2] == ["run.queued", "run.started"]
    assert events[-1].event == "run.completed"
    assert {e.data["trace_id"] for e in events} == {"t-lost"}
