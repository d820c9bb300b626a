"""Compound unique indexes of the embedded MongoDB: found through its indexes, enforced."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import BulkWriteError, DuplicateKeyError

from embedded.mongo import EmbeddedMongoServer

type Client = AsyncMongoClient[dict[str, Any]]


@pytest.fixture
async def events() -> AsyncIterator[Any]:
    async with EmbeddedMongoServer() as server:
        client: Client = AsyncMongoClient(server.uri)
        collection = client.db.events
        await collection.create_index([("session_id", 1), ("seq", 1)], unique=True)
        await collection.create_index("event_id", unique=True)
        try:
            yield collection
        finally:
            await client.close()


def doc(session: str, seq: int, event_id: str | None = None) -> dict[str, Any]:
    return {"session_id": session, "seq": seq, "event_id": event_id or f"{session}-{seq}"}


async def test_a_duplicate_compound_key_is_refused_across_and_within_batches(events: Any) -> None:
    await events.insert_many([doc("a", seq) for seq in range(1, 1001)])
    with pytest.raises(DuplicateKeyError):
        await events.insert_one(doc("a", 500, "other"))
    await events.insert_one(doc("b", 500))  # the same seq in another session is fine
    with pytest.raises(BulkWriteError) as raised:
        await events.insert_many(
            [doc("c", 1), doc("c", 2), doc("c", 1, "again"), doc("c", 3)], ordered=False
        )
    errors = raised.value.details["writeErrors"]
    assert [(e["index"], e["code"]) for e in errors] == [(2, 11000)]
    assert await events.count_documents({"session_id": "c"}) == 3


async def test_a_freed_key_can_be_taken_again(events: Any) -> None:
    await events.insert_one(doc("a", 1))
    await events.delete_one({"session_id": "a", "seq": 1})
    await events.insert_one(doc("a", 1, "second"))
    assert (await events.find_one({"session_id": "a", "seq": 1}))["event_id"] == "second"
    # An update that would collide is refused too (mongoeco's own check).
    await events.insert_one(doc("a", 2))
    with pytest.raises(DuplicateKeyError):
        await events.update_one({"seq": 2}, {"$set": {"seq": 1}})
