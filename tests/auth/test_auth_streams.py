"""Tokens for EventSource (cookie, query), writes that need a bearer and JSON, expiry of streams."""

from __future__ import annotations

import time

import httpx
import pytest

from support.servers import RunningAPI
from support.sse import open_stream
from support.tokens import bearer, token

pytestmark = pytest.mark.timeout(60)


async def append(client: httpx.AsyncClient, session: str, count: int, first: int) -> list[str]:
    response = await client.post(
        f"/v1/sessions/{session}/events",
        json={"events": [{"type": "n", "data": {"i": first + i}} for i in range(count)]},
        headers=bearer(token(scope="events:write", sessions=[session])),
    )
    assert response.status_code == 201, response.text
    return [e["id"] for e in response.json()["events"]]


async def test_get_takes_the_cookie_or_the_query_token(jwt_api: RunningAPI) -> None:
    reader = token(scope="events:read", sessions=["s1"])
    async with httpx.AsyncClient(base_url=jwt_api.url, timeout=15) as client:
        await append(client, "s1", 1, 0)
        async with open_stream(client, "s1", access_token=reader) as stream:
            assert stream.response.status_code == 200
            assert [e.data["data"] for e in await stream.take(1)] == [{"i": 0}]
        client.cookies.set("agentstream_token", reader)
        async with open_stream(client, "s1") as stream:
            assert stream.response.status_code == 200
            assert [e.data["data"] for e in await stream.take(1)] == [{"i": 0}]
        history = await client.get("/v1/sessions/s1/events", params={"limit": "5"})
        assert history.status_code == 200
        assert len(history.json()["events"]) == 1


async def test_writes_need_a_bearer_token_and_a_json_content_type(jwt_api: RunningAPI) -> None:
    writer = token(scope="events:write runs:write", sessions=["*"])
    body = b'{"type": "n", "data": {}}'
    async with httpx.AsyncClient(base_url=jwt_api.url, timeout=15) as client:
        client.cookies.set("agentstream_token", writer)
        json_type = {"content-type": "application/json"}
        by_cookie = await client.post("/v1/sessions/s1/events", content=body, headers=json_type)
        assert by_cookie.status_code == 401
        assert "GET only" in by_cookie.json()["error"]["message"]
        client.cookies.clear()
        by_query = await client.post(
            "/v1/sessions/s1/events",
            params={"access_token": writer},
            content=body,
            headers=json_type,
        )
        assert by_query.status_code == 401
        assert writer not in by_query.text
        for content_type in (None, "", "text/plain", "application/x-www-form-urlencoded"):
            headers = bearer(writer)
            if content_type is not None:
                headers["content-type"] = content_type
            refused = await client.post("/v1/sessions/s1/events", content=body, headers=headers)
            assert refused.status_code == 415, (content_type, refused.text)
            assert refused.json()["error"]["code"] == "unsupported_media_type"
        run = await client.post(
            "/v1/sessions/s1/runs",
            content=b'{"agent": "echo", "input": {}}',
            headers=bearer(writer),
        )
        assert run.status_code == 415
        ok = await client.post(
            "/v1/sessions/s1/events", content=body, headers={**bearer(writer), **json_type}
        )
        assert ok.status_code == 201, ok.text


async def test_a_stream_ends_at_the_token_expiry_and_resumes_exactly(jwt_api: RunningAPI) -> None:
    session = "expiring"
    async with httpx.AsyncClient(base_url=jwt_api.url, timeout=15) as client:
        written = await append(client, session, 3, 0)
        short = token(scope="events:read", sessions=[session], ttl=3)
        expires_at = int(time.time()) + 3
        async with open_stream(client, session, access_token=short) as stream:
            written += await append(client, session, 2, 3)
            first = []
            while (event := (await stream.take(1, timeout=15))[0]).event != "stream.reconnect":
                first.append(event)
            ending = event
            ended_at = time.time()
        assert ending.event == "stream.reconnect"
        assert ending.id is None
        assert ending.data == {"reason": "token_expired", "last_event_id": first[-1].id}
        assert expires_at - 1.5 <= ended_at <= expires_at + 5
        written += await append(client, session, 2, 5)  # while the client is away

        fresh = token(scope="events:read", sessions=[session])
        async with open_stream(
            client, session, access_token=fresh, last_event_id_header=ending.data["last_event_id"]
        ) as stream:
            rest = await stream.take(len(written) - len(first))
        delivered = first + rest
        assert [e.id for e in delivered] == written
        assert [e.data["data"]["i"] for e in delivered] == list(range(7))


async def test_an_expired_token_cannot_reopen_the_stream(jwt_api: RunningAPI) -> None:
    async with httpx.AsyncClient(base_url=jwt_api.url, timeout=15) as client:
        response = await client.get(
            "/v1/sessions/s1/stream",
            params={"access_token": token(ttl=-30)},
        )
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "the token has expired"
    assert response.headers["www-authenticate"] == "Bearer"
