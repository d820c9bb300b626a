"""The embedded server keeps MongoDB's size limits: replies and change-stream batches are split
under the 48 MB message limit, and other clients are answered while a large batch is written."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from bson import BSON
from pymongo import AsyncMongoClient

from embedded._batches import MAX_BSON_SIZE, MAX_MESSAGE_SIZE
from embedded.mongo import EmbeddedMongoServer

type Client = AsyncMongoClient[dict[str, Any]]

LARGE = 60_000  # bytes of payload per event: 1,000 of them are more than one 48 MB message
COUNT = 1000


@pytest.fixture
async def server() -> AsyncIterator[EmbeddedMongoServer]:
    async with EmbeddedMongoServer() as running:
        yield running


@pytest.fixture
async def client(server: EmbeddedMongoServer) -> AsyncIterator[Client]:
    mongo: Client = AsyncMongoClient(server.uri)
    try:
        yield mongo
    finally:
        await mongo.close()


def large_events(count: int = COUNT) -> list[dict[str, Any]]:
    return [{"session_id": "s", "seq": n, "data": {"text": "x" * LARGE}} for n in range(count)]


async def test_hello_states_the_limits(client: Client):
    hello = await client.admin.command("hello")
    assert hello["maxBsonObjectSize"] == MAX_BSON_SIZE
    assert hello["maxMessageSizeBytes"] == MAX_MESSAGE_SIZE


async def test_a_query_for_more_than_one_message_of_documents_is_answered_in_batches(
    client: Client,
):
    events = client.db.events
    await events.insert_many(large_events())
    found = await events.find({"session_id": "s"}).sort("seq", 1).to_list()
    assert [doc["seq"] for doc in found] == list(range(COUNT))
    whole = await events.find({}, batch_size=COUNT).to_list()  # 16 MB per batch, not 1,000 docs
    assert len(whole) == COUNT
    aggregated = await (await events.aggregate([{"$match": {"session_id": "s"}}])).to_list()
    assert len(aggregated) == COUNT


async def test_a_change_stream_delivers_large_events_across_batches(client: Client):
    events = client.db.events
    async with await events.watch(max_await_time_ms=200) as stream:
        await events.insert_many(large_events())
        seen = []
        deadline = time.monotonic() + 60
        while len(seen) < COUNT and time.monotonic() < deadline:
            change = await stream.try_next()
            if change is not None:
                seen.append(change["fullDocument"]["seq"])
    assert seen == list(range(COUNT))


async def test_other_clients_are_answered_while_a_large_batch_is_written(
    server: EmbeddedMongoServer, client: Client
):
    other: Client = AsyncMongoClient(server.uri)
    try:
        await other.admin.command("ping")
        insert = asyncio.create_task(client.db.events.insert_many(large_events()))
        waits = []
        while not insert.done():
            started = time.monotonic()
            await asyncio.wait_for(other.admin.command("hello"), 10)
            waits.append(time.monotonic() - started)
        await insert
    finally:
        await other.close()
    assert waits, "the batch was written before any hello was sent"
    assert max(waits) < 5.0, waits  # drivers time heartbeats out after 10 s


async def test_coll_stats_of_a_large_collection_is_estimated_from_a_sample(client: Client):
    docs = [{"n": n, "text": "x" * 100} for n in range(3000)]  # the same BSON size each
    await client.db.small.insert_many(docs[:10])
    await client.db.large.insert_many(docs)
    small = await client.db.command("collStats", "small")
    large = await client.db.command("collStats", "large")
    assert small["count"] == 10
    assert large["count"] == 3000
    assert large["size"] == small["size"] // 10 * 3000
    assert large["nindexes"] == small["nindexes"] == 1


async def test_a_document_over_16_mb_is_refused_as_mongod_refuses_it(client: Client):
    def sized(size: int, n: int) -> dict[str, Any]:
        shell = len(BSON.encode({"_id": n, "x": ""}))
        return {"_id": n, "x": "a" * (size - shell)}

    largest = sized(MAX_BSON_SIZE, 1)
    assert len(BSON.encode(largest)) == MAX_BSON_SIZE
    await client.db.big.insert_one(largest)
    # PyMongo lets a command exceed the limit by 16 KB, so one byte over reaches the server.
    ordered = await client.db.command(
        "insert", "big", documents=[{"_id": 0}, sized(MAX_BSON_SIZE + 1, 2), {"_id": 3}]
    )
    assert ordered["n"] == 1
    assert [(e["index"], e["code"]) for e in ordered["writeErrors"]] == [(1, 10334)]
    unordered = await client.db.command(
        "insert", "big", documents=[{"_id": 4}, sized(MAX_BSON_SIZE + 1, 5)], ordered=False
    )
    assert unordered["n"] == 1
    assert [(e["index"], e["code"]) for e in unordered["writeErrors"]] == [(1, 10334)]
    assert sorted(await client.db.big.distinct("_id")) == [0, 1, 4]
