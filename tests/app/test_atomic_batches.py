"""Batches are all or nothing where the deployment has transactions (a replica set, as the
suite's MongoDB is), and a retried batch stores each event exactly once either way."""

from __future__ import annotations

import pytest

from app.errors import Conflict
from app.mongo import Collections, is_replica_set
from app.store.events import EventWriter, NewEvent


async def stored(collections: Collections, session: str) -> list[dict[str, object]]:
    cursor = collections.events.find({"session_id": session}, {"_id": 0}).sort("seq", 1)
    return await cursor.to_list()


def batch(*ids: str) -> list[NewEvent]:
    return [NewEvent("n", {"id": i}, event_id=i) for i in ids]


@pytest.fixture
async def atomic(collections: Collections) -> EventWriter:
    client = collections.events.database.client
    assert await is_replica_set(client), "the suite's MongoDB is a replica set"
    return EventWriter(collections, transactions=True)


async def test_a_batch_that_cannot_be_stored_whole_stores_nothing(
    collections: Collections, atomic: EventWriter
) -> None:
    await atomic.append("one", batch("taken"))
    with pytest.raises(Conflict):
        await atomic.append("two", batch("x1", "x2", "taken", "x3"))
    docs = await stored(collections, "two")
    assert [d["event_id"] for d in docs if not d.get("void")] == []
    assert all(d.get("void") for d in docs)  # its positions are closed at once
    written = await atomic.append("two", batch("x1", "x2", "x3"))
    assert [d["event_id"] for d in written] == ["x1", "x2", "x3"]


async def test_without_transactions_a_refused_batch_may_be_half_stored(
    collections: Collections,
) -> None:
    """What the README says of a standalone: the rest of the batch is stored; a retry with the
    same event_ids completes it without a second copy."""
    plain = EventWriter(collections, transactions=False)
    await plain.append("one", batch("taken"))
    with pytest.raises(Conflict):
        await plain.append("two", batch("x1", "x2", "taken", "x3"))
    half = [d["event_id"] for d in await stored(collections, "two") if not d.get("void")]
    assert half == ["x1", "x2", "x3"]
    again = await plain.append("two", batch("x1", "x2", "x3"))
    real = [d for d in await stored(collections, "two") if not d.get("void")]
    assert [d["seq"] for d in again] == [d["seq"] for d in real]  # the stored copies, once
    voided = [d["seq"] for d in await stored(collections, "two") if d.get("void")]
    assert voided[0] == 3  # the refused event's position was closed at once, not left open


@pytest.mark.parametrize("transactions", [True, False], ids=["transaction", "standalone"])
async def test_a_retried_batch_is_stored_once_in_order(
    collections: Collections, transactions: bool
) -> None:
    writer = EventWriter(collections, transactions=transactions)
    first = await writer.append("s", batch("a", "b", "c"))
    again = await writer.append("s", batch("a", "b", "c", "d"))
    assert [d["seq"] for d in again[:3]] == [d["seq"] for d in first]
    real = [d for d in await stored(collections, "s") if not d.get("void")]
    assert [d["event_id"] for d in real] == ["a", "b", "c", "d"]
    seqs = [d["seq"] for d in await stored(collections, "s")]
    assert seqs == list(range(1, len(seqs) + 1))  # dense: retried positions are voided
