"""Appends idempotent on event_id: exact retries, changed payloads, and refused writes."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import httpx
import pytest

from app.settings import Settings
from support.servers import RunningAPI, running_api
from support.sse import open_stream

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def patient_api(settings: Settings) -> AsyncIterator[RunningAPI]:
    """SSE_GAP_TIMEOUT far beyond every wait here: a position left open would stall the test."""
    slow_gaps = dataclasses.replace(settings, sse_gap_timeout=120.0)
    async with running_api(slow_gaps) as running:
        yield running
        await running.services.mongo.drop_database(slow_gaps.mongo_db)


async def test_an_exact_retry_returns_the_stored_event(api: RunningAPI) -> None:
    body = {"type": "t", "data": {"a": [1, {"b": 2}]}, "trace_id": "tr", "event_id": "ev-1"}
    async with httpx.AsyncClient(base_url=api.url) as client:
        first = await client.post("/v1/sessions/s/events", json=body)
        again = await client.post("/v1/sessions/s/events", json=body)
        page = (await client.get("/v1/sessions/s/events")).json()
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert [e["event_id"] for e in page["events"]] == ["ev-1"]


@pytest.mark.parametrize(
    "change",
    [{"type": "other"}, {"data": {"a": [1, {"b": 3}]}}, {"trace_id": "tr-2"}, {"trace_id": None}],
)
async def test_a_changed_payload_under_a_used_event_id_is_a_conflict(
    api: RunningAPI, change: dict[str, object]
) -> None:
    body = {"type": "t", "data": {"a": [1, {"b": 2}]}, "trace_id": "tr", "event_id": "ev-1"}
    async with httpx.AsyncClient(base_url=api.url) as client:
        assert (await client.post("/v1/sessions/s/events", json=body)).status_code == 201
        changed = await client.post("/v1/sessions/s/events", json=body | change)
        stored = (await client.get("/v1/events/ev-1")).json()
    assert changed.status_code == 409, changed.text
    assert changed.json()["error"]["code"] == "conflict"
    assert "another type, data or trace_id" in changed.json()["error"]["message"]
    assert (stored["type"], stored["data"], stored["trace_id"]) == (
        body["type"],
        body["data"],
        body["trace_id"],
    )


@pytest.mark.parametrize("cause", ["other_session", "changed_payload"])
async def test_a_refused_append_does_not_stall_the_sessions_subscribers(
    patient_api: RunningAPI, cause: str
) -> None:
    used = {"type": "t", "data": {}, "event_id": "taken"}
    async with httpx.AsyncClient(base_url=patient_api.url) as client:
        first_session = "v1" if cause == "other_session" else "v2"
        assert (await client.post(f"/v1/sessions/{first_session}/events", json=used)).is_success
        async with open_stream(client, "v2") as stream:
            if cause == "changed_payload":
                (original,) = await stream.take(1)
                assert original.data["event_id"] == "taken"
            retry = used | ({"data": {"x": 1}} if cause == "changed_payload" else {})
            refused = await client.post("/v1/sessions/v2/events", json=retry)
            assert refused.status_code == 409, refused.text
            later = await client.post("/v1/sessions/v2/events", json={"type": "n", "data": {}})
            (got,) = await stream.take(1, timeout=15)  # not SSE_GAP_TIMEOUT (120 s) later
    assert got.id == later.json()["events"][0]["id"]
    voids = patient_api.services.collections.events.find({"session_id": "v2", "void": True})
    assert len(await voids.to_list()) == 1  # the refused write's position, closed at once
