"""Bad input gets a clear 4xx JSON error and changes nothing."""

from __future__ import annotations

import httpx
import pytest

from support.servers import RunningAPI


async def count(api: RunningAPI) -> tuple[int, int]:
    collections = api.services.collections
    return (
        await collections.events.count_documents({}),
        await collections.sessions.count_documents({}),
    )


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b'{"type": "t", "data": [1]}', 400, "data must be a JSON object"),
        (b'{"type": "t", "data": "text"}', 400, "data must be a JSON object"),
        (b'{"data": {}}', 400, "type is required"),
        (b'{"type": {"$gt": ""}, "data": {}}', 400, "type must be a string"),
        (b'{"type": "' + b"x" * 65 + b'", "data": {}}', 400, "1-64 characters"),
        (b'{"type": "bad type!", "data": {}}', 400, "1-64 characters"),
        (b'{"type": "t", "data": {}, "trace_id": {"$ne": null}}', 400, "trace_id must be a string"),
        (b'{"type": "t", "data": {}, "event_id": ["a"]}', 400, "event_id must be a string"),
        (b'{"type": "t", "data": {"$where": "sleep(1)"}}', 400, "starts with '$'"),
        (b'{"type": "t", "data": {"a": {"$set": {"x": 1}}}}', 400, "starts with '$'"),
        (b'{"type": "t", "data": {}, "session_id": "other"}', 400, "unknown fields"),
        (b'{"events": []}', 400, "non-empty array"),
        (
            b'{"events": [{"type": "ok", "data": {}}, {"type": 5, "data": {}}]}',
            400,
            "events[1].type",
        ),
        (
            b'{"events": [{"type": "a", "data": {}, "event_id": "x"},'
            b' {"type": "b", "data": {}, "event_id": "x"}]}',
            400,
            "appears twice",
        ),
        (b'{"type": "t"}', 400, "event.data is required"),
        (b'{"events": [{"type": "t", "data": {}}, {"type": "u"}]}', 400, "events[1].data"),
        # BSON holds 64-bit signed integers: 2^63 and beyond are refused before anything is
        # stored (they used to take a position, then fail with a 500).
        (b'{"type": "a", "data": {"x": 9223372036854775808}}', 400, "64-bit"),
        (b'{"type": "a", "data": {"x": [-9223372036854775809]}}', 400, "64-bit"),
        (b'{"type": "a", "data": {"x": 18446744073709551615}}', 400, "64-bit"),
        # Beyond 2^64 orjson reads a float; such an integer is refused, not silently rounded.
        (b'{"type": "a", "data": {"x": 123456789012345678901234567890}}', 400, "64-bit"),
        (b'{"type": "a", "data": {"x": {"y": -123456789012345678901234567890}}}', 400, "64-bit"),
        (
            b'{"type": "a", "data": {"x": ' + b"[" * 1000 + b"1e300" + b"]" * 1000 + b"}}",
            400,
            "deep",
        ),
        (b"[1, 2]", 400, "must be a JSON object"),
    ],
)
async def test_bad_events_are_refused(
    api: RunningAPI, body: bytes, status: int, fragment: str
) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        response = await client.post(
            "/v1/sessions/s1/events", content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == "bad_request"
    assert fragment in error["message"]
    assert await count(api) == (0, 0)


async def test_an_oversized_event_gets_413(api: RunningAPI) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        response = await client.post(
            "/v1/sessions/s1/events", json={"type": "big", "data": {"x": "y" * 70_000}}
        )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert await count(api) == (0, 0)


async def test_a_non_json_body_gets_415(api: RunningAPI) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        response = await client.post(
            "/v1/sessions/s1/events", content=b"type=x", headers={"content-type": "text/plain"}
        )
    assert response.status_code == 415


@pytest.mark.parametrize(
    "path",
    [
        "/v1/sessions/bad%20id/events",
        "/v1/sessions/" + "x" * 129 + "/events",
        "/v1/sessions/%7B%22%24ne%22%3A1%7D/events",  # {"$ne":1}
        "/v1/sessions/a$b/stream",
        "/v1/events/%24where",
        "/v1/traces/a%00b/events",
    ],
)
async def test_bad_ids_in_paths_are_refused(api: RunningAPI, path: str) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        response = await client.get(path)
    assert response.status_code == 400, response.text
    assert "1-128 characters" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("params", "headers", "fragment"),
    [
        ({"last_event_id": "garbage"}, {}, "not a resume token"),
        ({}, {"Last-Event-ID": "12"}, "not a resume token"),
        ({}, {"Last-Event-ID": "3.00000000"}, "belongs to another session"),
        ({"since_timestamp": "yesterday"}, {}, "ISO 8601 or epoch milliseconds"),
        ({"since_timestamp": "2026-13-45T00:00:00Z"}, {}, "ISO 8601"),
        ({"since_timestamp": "9999-12-31T23:59:59-14:00"}, {}, "out of range"),
        ({"since_timestamp": "0001-01-01T00:00:00+14:00"}, {}, "out of range"),
        ({"since_timestamp": "\u0661\u0667" + "\u0660" * 11}, {}, "ISO 8601 or epoch milliseconds"),
        ({"last_event_id": "\u0663.00000000"}, {}, "not a resume token"),
    ],
)
async def test_bad_stream_positions_are_refused(
    api: RunningAPI, params: dict[str, str], headers: dict[str, str], fragment: str
) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        response = await client.get("/v1/sessions/s1/stream", params=params, headers=headers)
    assert response.status_code == 400
    assert fragment in response.json()["error"]["message"]


@pytest.mark.parametrize("since", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
async def test_history_refuses_timestamps_out_of_range(api: RunningAPI, since: str) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        response = await client.get("/v1/sessions/s1/events", params={"since_timestamp": since})
    assert response.status_code == 400, response.text
    assert "out of range" in response.json()["error"]["message"]


async def test_integers_at_the_edges_of_64_bits_are_stored_exactly(api: RunningAPI) -> None:
    data = {"max": 2**63 - 1, "min": -(2**63), "float": 1e30, "big_float": -1.5e300}
    async with httpx.AsyncClient(base_url=api.url) as client:
        written = await client.post("/v1/sessions/s1/events", json={"type": "a", "data": data})
        assert written.status_code == 201, written.text
        event_id = written.json()["events"][0]["event_id"]
        read = (await client.get(f"/v1/events/{event_id}")).json()
    assert read["data"] == data
    assert isinstance(read["data"]["max"], int)


async def test_a_token_from_another_session_is_refused(api: RunningAPI) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        written = await client.post("/v1/sessions/mine/events", json={"type": "t", "data": {}})
        token = written.json()["events"][0]["id"]
        stream = await client.get("/v1/sessions/yours/stream", headers={"Last-Event-ID": token})
        page = await client.get("/v1/sessions/yours/events", params={"after": token})
    assert stream.status_code == page.status_code == 400
    assert "another session" in stream.json()["error"]["message"]


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "ten", "1e3", "\u0663", "\u00b3", "+5", " 5"])
@pytest.mark.parametrize("path", ["/v1/sessions/s1/events", "/v1/traces/t1/events"])
async def test_limit_outside_1_to_1000_is_refused(api: RunningAPI, path: str, limit: str) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        response = await client.get(path, params={"limit": limit})
    assert response.status_code == 400
    assert "from 1 to 1000" in response.json()["error"]["message"]


async def test_lookups(api: RunningAPI) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        body = {
            "events": [
                {"type": "a", "data": {"n": 1}, "trace_id": "tr-1", "event_id": "ev-1"},
                {"type": "b", "data": {"n": 2}, "trace_id": "tr-1"},
                {"type": "c", "data": {"n": 3}},
            ]
        }
        written = (await client.post("/v1/sessions/look/events", json=body)).json()["events"]
        one = await client.get("/v1/events/ev-1")
        missing = await client.get("/v1/events/nope")
        trace = await client.get("/v1/traces/tr-1/events")
    assert one.status_code == 200
    assert one.json()["id"] == written[0]["id"]
    assert one.json()["trace_id"] == "tr-1"
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert [e["event_id"] for e in trace.json()["events"]] == ["ev-1", written[1]["event_id"]]
