"""The event writer's ordering and idempotency, against the MongoDB the suite uses."""

from __future__ import annotations

import asyncio

import pytest

from app.errors import Conflict
from app.mongo import Collections
from app.store.events import EventWriter, NewEvent


def events(*types: str, **fields: str) -> list[NewEvent]:
    return [NewEvent(type=t, data={"t": t}, **fields) for t in types]


async def stored(collections: Collections, session: str) -> list[dict[str, object]]:
    cursor = collections.events.find({"session_id": session}, {"_id": 0}).sort("seq", 1)
    return await cursor.to_list()


async def test_concurrent_writers_fill_dense_positions_with_ordered_times(
    collections: Collections,
) -> None:
    writer = EventWriter(collections)
    await asyncio.gather(*(writer.append("s", events("a", "b", "c")) for _ in range(6)))
    docs = await stored(collections, "s")
    assert [d["seq"] for d in docs] == list(range(1, 19))
    times = [d["timestamp"] for d in docs]
    assert times == sorted(times)  # type: ignore[type-var]


async def test_a_retried_write_makes_no_second_event(collections: Collections) -> None:
    writer = EventWriter(collections)
    first = await writer.append("s", [NewEvent("a", {"n": 1}, event_id="ev-1")])
    again = await writer.append(
        "s", [NewEvent("a", {"n": 1}, event_id="ev-1"), NewEvent("b", {}, event_id="ev-2")]
    )
    assert again[0]["seq"] == first[0]["seq"] == 1
    assert again[0]["event_id"] == "ev-1"
    real = [d for d in await stored(collections, "s") if not d.get("void")]
    assert [(d["event_id"], d["seq"]) for d in real] == [("ev-1", 1), ("ev-2", 3)]
    # The position the retry took for ev-1 is closed, so readers never wait for it.
    assert [d["seq"] for d in await stored(collections, "s")] == [1, 2, 3]


async def test_a_late_writer_loses_its_voided_position_and_takes_a_new_one(
    collections: Collections,
) -> None:
    writer = EventWriter(collections)
    await writer.void("s", [1])  # a reader gave up waiting for position 1
    written = await writer.append("s", events("late"))
    assert written[0]["seq"] == 2
    docs = await stored(collections, "s")
    assert [(d["seq"], bool(d.get("void"))) for d in docs] == [(1, True), (2, False)]


async def test_an_event_id_of_another_session_is_a_conflict(collections: Collections) -> None:
    writer = EventWriter(collections)
    await writer.append("one", [NewEvent("a", {}, event_id="shared")])
    with pytest.raises(Conflict, match="another session"):
        await writer.append("two", [NewEvent("a", {}, event_id="shared")])


async def test_a_write_that_fails_after_taking_positions_voids_them(
    collections: Collections,
) -> None:
    """Every failure after the positions are taken closes them: no reader waits for them."""
    writer = EventWriter(collections)
    unstorable = NewEvent("a", {"x": 2**63})  # BSON stops at 64-bit signed integers
    with pytest.raises(OverflowError):
        await writer.append("s", [NewEvent("ok", {}), unstorable])
    docs = await stored(collections, "s")
    assert [(d["seq"], d.get("void")) for d in docs] == [(1, True), (2, True)]
    later = await writer.append("s", [NewEvent("b", {})])
    assert later[0]["seq"] == 3


async def test_a_conflicting_event_id_voids_the_positions_it_took(
    collections: Collections,
) -> None:
    writer = EventWriter(collections)
    await writer.append("one", [NewEvent("a", {}, event_id="shared")])
    with pytest.raises(Conflict):
        await writer.append("two", [NewEvent("a", {}, event_id="shared")])
    with pytest.raises(Conflict):
        await writer.append(
            "one", [NewEvent("a", {"changed": True}, event_id="shared")], exact_retries=True
        )
    assert [(d["seq"], d.get("void")) for d in await stored(collections, "two")] == [(1, True)]
    assert [(d["seq"], d.get("void")) for d in await stored(collections, "one")] == [
        (1, None),
        (2, True),
    ]
