"""Run streams belong to the service: the two attacks of issue 9, replayed over HTTP.

The attacker writes while the run is under way (queued, its `run.queued` written); the worker
then runs it in arq's burst mode, deterministic and with nothing left running afterwards.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from app.settings import Settings
from support.servers import RunningAPI
from support.sse import Event, Stream, open_stream
from support.tokens import bearer, token
from support.worker import burst

pytestmark = pytest.mark.timeout(90)

TERMINAL = {"run.completed", "run.failed", "run.cancelled", "run.timed_out"}
CLIENT = bearer(token("mallory", scope="events:read events:write runs:write", sessions=["*"]))


async def until_end(stream: Stream) -> list[Event]:
    seen: list[Event] = []
    async with asyncio.timeout(30):
        while not seen or seen[-1].event not in TERMINAL:
            seen.extend(await stream.take(1, timeout=30))
    return seen


async def post(client: httpx.AsyncClient, session: str, body: object) -> httpx.Response:
    return await client.post(f"/v1/sessions/{session}/events", json=body, headers=CLIENT)


async def test_a_client_cannot_fake_or_hide_a_run_ending(
    jwt_settings: Settings, jwt_api: RunningAPI
) -> None:
    async with (
        httpx.AsyncClient(base_url=jwt_api.url, timeout=15) as client,
        open_stream(client, "victim", access_token=token(sessions=["victim"])) as stream,
    ):
        started = await client.post(
            "/v1/sessions/victim/runs",
            json={"agent": "echo", "input": {"text": "abcdef", "delay": 0.05}},
            headers=CLIENT,
        )
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        assert (await stream.take(1))[0].event == "run.queued"

        # The attack as tried: a fake ending under the id the worker used to give its own.
        fake = await post(
            client, "victim", {"type": "run.completed", "data": {}, "event_id": f"{run_id}.end"}
        )
        assert fake.status_code == 400
        assert fake.json()["error"]["code"] == "reserved_type"
        control = await post(
            client, "victim", {"events": [{"type": "stream.reconnect", "data": {}}]}
        )
        assert control.json()["error"]["code"] == "reserved_type"
        # The old id is a client id like any other now; the service's ids are out of reach.
        squat = await post(
            client, "victim", {"type": "note", "data": {}, "event_id": f"{run_id}.end"}
        )
        assert squat.status_code == 201, squat.text
        taken = await post(
            client, "victim", {"type": "note", "data": {}, "event_id": f"{run_id}~end"}
        )
        assert taken.status_code == 400

        await burst(jwt_settings)
        events = await until_end(stream)
    kinds = [e.event for e in events]
    assert kinds.count("run.completed") == 1
    assert kinds[-1] == "run.completed"
    assert events[-1].data["event_id"] == f"{run_id}~end"
    assert events[-1].data["data"]["run_id"] == run_id
    record = await jwt_api.services.collections.runs.find_one({"run_id": run_id})
    assert record is not None
    assert record["sub"] == "mallory"  # the caller who started it over HTTP


async def test_a_client_cannot_block_a_future_run(
    jwt_settings: Settings, jwt_api: RunningAPI
) -> None:
    async with httpx.AsyncClient(base_url=jwt_api.url, timeout=15) as client:
        squat = await post(
            client, "elsewhere", {"type": "note", "data": {}, "event_id": "future-run.queued"}
        )
        assert squat.status_code == 201, squat.text
        reserved = await post(
            client, "elsewhere", {"type": "n", "data": {}, "event_id": "future-run~queued"}
        )
        assert reserved.status_code == 400
        async with open_stream(client, "target", access_token=token(sessions=["target"])) as s:
            started = await client.post(
                "/v1/sessions/target/runs",
                json={"agent": "echo", "input": {"text": "ok"}, "run_id": "future-run"},
                headers=CLIENT,
            )
            assert started.status_code == 202, started.text
            await burst(jwt_settings)
            events = await until_end(s)
    assert events[0].event == "run.queued"
    assert events[0].data["event_id"] == "future-run~queued"
    assert events[-1].event == "run.completed"
    run = await client_get_run(jwt_api, "future-run")
    assert run["status"] == "succeeded"


async def client_get_run(api: RunningAPI, run_id: str) -> dict[str, object]:
    async with httpx.AsyncClient(base_url=api.url, timeout=15) as client:
        response = await client.get(f"/v1/runs/{run_id}", headers=CLIENT)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body
