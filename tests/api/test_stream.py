"""The stream's guarantees (DESIGN.md), end to end over real uvicorn, in both feed modes."""

from __future__ import annotations

import asyncio
import dataclasses
import random

import httpx
import pytest

from support.servers import RunningAPI, running_api
from support.sse import Event, open_stream
from support.waits import eventually

pytestmark = pytest.mark.timeout(120)


async def post(client: httpx.AsyncClient, session: str, *events: dict[str, object]) -> list[str]:
    body: dict[str, object] = {"events": list(events)} if len(events) > 1 else events[0]
    response = await client.post(f"/v1/sessions/{session}/events", json=body)
    assert response.status_code == 201, response.text
    return [e["id"] for e in response.json()["events"]]


async def history(client: httpx.AsyncClient, session: str) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    after: str | None = None
    while True:
        params = {"limit": "7"} | ({"after": after} if after else {})
        page = (await client.get(f"/v1/sessions/{session}/events", params=params)).json()
        found.extend(page["events"])
        after = page["next"]
        if after is None:
            return found


def ids(events: list[Event]) -> list[str | None]:
    return [e.id for e in events]


async def test_concurrent_writers_give_every_subscriber_one_order(feed_api: RunningAPI) -> None:
    sessions = ["alpha", "beta", "gamma"]
    writers, per_writer = 4, 5
    total = writers * per_writer  # per session
    async with httpx.AsyncClient(base_url=feed_api.url) as client:
        async with (
            open_stream(client, "alpha") as a1,
            open_stream(client, "alpha") as a2,
            open_stream(client, "beta") as b1,
            open_stream(client, "beta") as b2,
            open_stream(client, "gamma") as g1,
            open_stream(client, "gamma") as g2,
        ):
            await eventually(lambda: feed_api.services.hub.subscribers == 6, what="subscribers")

            async def writer(n: int) -> None:
                for i in range(per_writer):
                    for session in sessions:
                        await post(client, session, {"type": "w", "data": {"w": n, "i": i}})

            readers = {
                name: asyncio.create_task(stream.take(total, timeout=60))
                for name, stream in {
                    "a1": a1, "a2": a2, "b1": b1, "b2": b2, "g1": g1, "g2": g2
                }.items()
            }  # fmt: skip
            await asyncio.gather(*(writer(n) for n in range(writers)))
            got = {name: await task for name, task in readers.items()}

        for session, (x, y) in zip(
            sessions, [("a1", "a2"), ("b1", "b2"), ("g1", "g2")], strict=True
        ):
            stored = await history(client, session)
            assert len(stored) == total
            assert ids(got[x]) == ids(got[y]) == [e["id"] for e in stored]
            assert {e.data["session_id"] for e in got[x]} == {session}
            assert sorted((e.data["data"]["w"], e.data["data"]["i"]) for e in got[x]) == sorted(
                (w, i) for w in range(writers) for i in range(per_writer)
            )


async def test_reconnecting_with_the_last_id_gives_every_event_once(feed_api: RunningAPI) -> None:
    total = 30
    rng = random.Random(7)
    async with httpx.AsyncClient(base_url=feed_api.url) as client:

        async def produce() -> None:
            for i in range(total):
                await post(client, "drops", {"type": "n", "data": {"i": i}})

        async def consume() -> list[Event]:
            received: list[Event] = []
            last: str | None = None
            while len(received) < total:
                params = {"last_event_id_header": last} if last else {}
                async with open_stream(client, "drops", **params) as stream:
                    want = min(rng.randint(1, 8), total - len(received))
                    batch = await stream.take(want, timeout=30)
                received.extend(batch)
                last = batch[-1].id
            return received

        consumers = [asyncio.create_task(consume()) for _ in range(3)]
        await produce()
        results = await asyncio.gather(*consumers)
        stored = [e["id"] for e in await history(client, "drops")]
    for received in results:
        assert ids(received) == stored
        assert [e.data["data"]["i"] for e in received] == list(range(total))


async def test_since_timestamp_replays_what_the_database_holds(feed_api: RunningAPI) -> None:
    async with httpx.AsyncClient(base_url=feed_api.url) as client:
        for i in range(6):
            await post(client, "since", {"type": "n", "data": {"i": i}})
        stored = await history(client, "since")
        cut = stored[3]["timestamp"]
        assert isinstance(cut, str)
        expected = [e["id"] for e in stored if str(e["timestamp"]) >= cut]
        async with open_stream(client, "since", since_timestamp=cut) as stream:
            got = await stream.take(len(expected))
        assert ids(got) == expected
        page = await client.get("/v1/sessions/since/events", params={"since_timestamp": cut})
        assert [e["id"] for e in page.json()["events"]] == expected


async def test_a_new_subscriber_gets_history_then_live(feed_api: RunningAPI) -> None:
    async with httpx.AsyncClient(base_url=feed_api.url) as client:
        first = await post(client, "live", {"type": "a", "data": {}}, {"type": "b", "data": {}})
        async with open_stream(client, "live") as stream:
            replayed = await stream.take(2)
            later = await post(client, "live", {"type": "c", "data": {"x": 1}})
            live = await stream.take(1)
        assert stream.retry == feed_api.services.settings.sse_retry_ms
    assert ids(replayed) == first
    assert ids(live) == later
    assert live[0].event == "c"
    assert set(live[0].data) >= {"event_id", "session_id", "type", "data", "trace_id", "timestamp"}


async def test_a_stale_position_is_reported_as_history_lost(feed_api: RunningAPI) -> None:
    async with httpx.AsyncClient(base_url=feed_api.url) as client:
        written = await post(client, "old", *({"type": "n", "data": {"i": i}} for i in range(5)))
        # What the TTL monitor does: the oldest events disappear.
        await feed_api.services.collections.events.delete_many(
            {"session_id": "old", "seq": {"$lte": 3}}
        )
        async with open_stream(client, "old", last_event_id_header=written[0]) as stream:
            got = await stream.take(3)
    assert got[0].event == "stream.history_lost"
    assert got[0].id is None
    assert got[0].data["requested"] == written[0]
    assert ids(got[1:]) == written[3:]


async def test_a_position_whose_writer_died_is_voided_and_the_stream_goes_on(
    feed_api: RunningAPI,
) -> None:
    collections = feed_api.services.collections
    async with httpx.AsyncClient(base_url=feed_api.url) as client:
        first = await post(client, "orphan", {"type": "a", "data": {}})
        async with open_stream(client, "orphan") as stream:
            assert ids(await stream.take(1)) == first
            # A writer takes position 2 and dies before its insert.
            await collections.sessions.update_one({"_id": "orphan"}, {"$inc": {"seq": 1}})
            later = await post(client, "orphan", {"type": "b", "data": {}})
            got = await stream.take(1, timeout=30)  # held back until position 2 is voided
        stored = [e["id"] for e in await history(client, "orphan")]
    assert ids(got) == later
    void = await collections.events.find_one({"session_id": "orphan", "seq": 2})
    assert void is not None
    assert void["void"] is True
    assert stored == first + later


async def test_two_api_instances_agree_and_a_client_can_move_between_them(
    feed_api: RunningAPI,
) -> None:
    same_db = dataclasses.replace(feed_api.services.settings)
    async with (
        running_api(same_db) as other,
        httpx.AsyncClient(base_url=feed_api.url) as one,
        httpx.AsyncClient(base_url=other.url) as two,
        open_stream(one, "shared") as on_one,
        open_stream(two, "shared") as on_two,
    ):
        await eventually(lambda: feed_api.services.hub.subscribers == 1)
        await eventually(lambda: other.services.hub.subscribers == 1)

        async def write(client: httpx.AsyncClient, tag: str) -> None:
            for i in range(6):
                await post(client, "shared", {"type": tag, "data": {"i": i}})

        await asyncio.gather(write(one, "a"), write(two, "b"))
        seen_one = await on_one.take(12)
        seen_two = await on_two.take(6)
        # Half way through, the second client moves to the first instance with its last id.
        async with open_stream(one, "shared", last_event_id_header=seen_two[-1].id or "") as moved:
            seen_two += await moved.take(6)
        stored = [e["id"] for e in await history(one, "shared")]
    assert ids(seen_one) == ids(seen_two) == stored
