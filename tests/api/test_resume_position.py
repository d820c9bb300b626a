"""Where a stream starts when it is given a position: precedence, and ids past the end."""

from __future__ import annotations

import httpx
import pytest

from app.store import tokens
from support.servers import RunningAPI
from support.sse import open_stream

pytestmark = pytest.mark.timeout(60)


async def post(client: httpx.AsyncClient, session: str, *events: dict[str, object]) -> list[str]:
    body: dict[str, object] = {"events": list(events)} if len(events) > 1 else events[0]
    response = await client.post(f"/v1/sessions/{session}/events", json=body)
    assert response.status_code == 201, response.text
    return [e["id"] for e in response.json()["events"]]


async def test_last_event_id_wins_over_since_timestamp(api: RunningAPI) -> None:
    """A reconnecting EventSource repeats its URL (with since_timestamp) and adds the header."""
    async with httpx.AsyncClient(base_url=api.url) as client:
        written = await post(client, "p", *({"type": "n", "data": {"i": i}} for i in range(4)))
        since = "0"  # the epoch: everything
        async with open_stream(
            client, "p", since_timestamp=since, last_event_id_header=written[1]
        ) as stream:
            assert stream.response.status_code == 200
            got = await stream.take(2)
        async with open_stream(client, "p", since_timestamp=since, last_event_id=written[2]) as q:
            assert q.response.status_code == 200
            rest = await q.take(1)
    assert [e.id for e in got] == written[2:]
    assert [e.id for e in rest] == written[3:]


async def test_an_id_past_the_sessions_end_says_so_and_goes_on_live(api: RunningAPI) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        written = await post(client, "ahead", *({"type": "n", "data": {"i": i}} for i in range(3)))
        beyond = tokens.encode("ahead", 999)
        async with open_stream(client, "ahead", last_event_id_header=beyond) as stream:
            assert stream.response.status_code == 200
            (notice,) = await stream.take(1)
            later = await post(client, "ahead", {"type": "n", "data": {"i": 3}})
            (live,) = await stream.take(1)
    assert notice.event == "stream.history_lost"
    assert notice.id is None
    assert notice.data["reason"] == "ahead"
    assert notice.data["requested"] == beyond
    assert notice.data["resumed_after"] == written[-1]
    assert "beyond the session's last event" in notice.data["message"]
    assert live.id == later[0]  # nothing replayed: live from the end


async def test_an_id_for_a_session_with_nothing_goes_on_from_its_first_event(
    api: RunningAPI,
) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        stale = tokens.encode("reset", 7)
        async with open_stream(client, "reset", last_event_id=stale) as stream:
            (notice,) = await stream.take(1)
            written = await post(client, "reset", {"type": "n", "data": {}})
            (first,) = await stream.take(1)
    assert notice.data["reason"] == "ahead"
    assert notice.data["resumed_after"] is None
    assert first.id == written[0] == tokens.encode("reset", 1)
