"""The embedded MongoDB-protocol server, driven only through PyMongo's async client over TCP."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from bson import Int64, Timestamp
from pymongo import AsyncMongoClient
from pymongo.asynchronous.change_stream import AsyncChangeStream
from pymongo.errors import BulkWriteError, OperationFailure
from pymongo.monitoring import CommandListener, CommandStartedEvent, CommandSucceededEvent

from embedded.mongo import EmbeddedMongoServer

ROOT = Path(__file__).resolve().parents[2]
WAIT = 5.0

type Client = AsyncMongoClient[dict[str, Any]]
type Stream = AsyncChangeStream[dict[str, Any]]


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


async def next_change(stream: Stream) -> dict[str, Any]:
    return await asyncio.wait_for(stream.next(), WAIT)


async def changes(stream: Stream, count: int) -> list[dict[str, Any]]:
    return [await next_change(stream) for _ in range(count)]


def values(events: list[dict[str, Any]], field: str = "n") -> list[Any]:
    return [event["fullDocument"][field] for event in events]


def data(token: Mapping[str, Any] | None) -> str:
    assert token is not None
    value = token["_data"]
    assert isinstance(value, str)
    return value


async def test_hello_reports_a_replica_set_primary(server: EmbeddedMongoServer, client: Client):
    hello = await client.admin.command("hello")
    member = server.uri.removeprefix("mongodb://").split("/")[0]
    assert hello["setName"] == "rs0"
    assert hello["hosts"] == [member]
    assert hello["primary"] == hello["me"] == member
    assert hello["isWritablePrimary"] is True
    assert hello["secondary"] is False
    assert hello["logicalSessionTimeoutMinutes"] > 0


async def test_coll_mod_changes_a_ttl_index_and_keeps_the_documents(client: Client):
    events = client.db.events
    await events.create_index("timestamp", expireAfterSeconds=3600, name="ttl")
    await events.create_index("trace_id")
    now = datetime.datetime.now(datetime.UTC)
    await events.insert_many([{"n": n, "timestamp": now, "trace_id": n} for n in range(3)])

    reply = await client.db.command(
        {"collMod": "events", "index": {"name": "ttl", "expireAfterSeconds": 7200}}
    )
    assert reply["expireAfterSeconds_old"] == 3600
    assert reply["expireAfterSeconds_new"] == 7200
    assert reply["ok"] == 1.0
    assert (await events.index_information())["ttl"]["expireAfterSeconds"] == 7200
    assert await events.count_documents({}) == 3

    by_key = await client.db.command(
        {"collMod": "events", "index": {"keyPattern": {"timestamp": 1}, "expireAfterSeconds": 60}}
    )
    assert (by_key["expireAfterSeconds_old"], by_key["expireAfterSeconds_new"]) == (7200, 60)
    indexes = {index["name"]: index async for index in await events.list_indexes()}
    assert indexes["ttl"]["expireAfterSeconds"] == 60
    assert "trace_id_1" in indexes
    assert await events.count_documents({}) == 3


async def test_coll_mod_errors(client: Client):
    await client.db.events.create_index("timestamp", expireAfterSeconds=60, name="ttl")
    with pytest.raises(OperationFailure) as unknown_index:
        await client.db.command(
            {"collMod": "events", "index": {"name": "nope", "expireAfterSeconds": 1}}
        )
    assert unknown_index.value.code == 27
    with pytest.raises(OperationFailure) as unsupported:
        await client.db.command({"collMod": "events", "validator": {"n": {"$gt": 0}}})
    assert unsupported.value.code == 115


async def test_watch_sees_inserts_with_the_full_document(client: Client):
    events = client.db.events
    async with await events.watch(max_await_time_ms=200) as stream:
        await events.insert_one({"n": 1})
        await events.insert_many([{"n": 2}, {"n": 3}])
        async with client.start_session() as session, await session.start_transaction():
            await events.insert_one({"n": 4}, session=session)
            await events.insert_one({"n": 5}, session=session)
        seen = await changes(stream, 5)

    assert values(seen) == [1, 2, 3, 4, 5]
    first = seen[0]
    assert first["operationType"] == "insert"
    assert first["ns"] == {"db": "db", "coll": "events"}
    assert first["documentKey"] == {"_id": first["fullDocument"]["_id"]}
    assert isinstance(first["clusterTime"], Timestamp)
    assert isinstance(first["wallTime"], datetime.datetime)
    int(data(first["_id"]), 16)
    tokens = [data(event["_id"]) for event in seen]
    assert tokens == sorted(tokens)
    assert len(set(tokens)) == 5


async def test_resume_after_gives_exactly_the_later_events(client: Client):
    events = client.db.events
    async with await events.watch(max_await_time_ms=200) as stream:
        await events.insert_many([{"n": n} for n in range(5)])
        seen = await changes(stream, 5)

    async with await events.watch(resume_after=seen[1]["_id"], max_await_time_ms=50) as resumed:
        assert values(await changes(resumed, 3)) == [2, 3, 4]
        assert await resumed.try_next() is None


async def test_pipeline_stages_apply_and_the_batch_resume_token_advances(client: Client):
    events, other = client.db.events, client.db.other
    pipeline = [{"$match": {"operationType": "insert"}}]
    async with await events.watch(pipeline, max_await_time_ms=50) as stream:
        assert await stream.try_next() is None
        before = data(stream.resume_token)
        await other.insert_one({"n": 0})
        await events.insert_one({"n": 1})
        await events.delete_one({"n": 1})
        insert = await next_change(stream)
        assert values([insert]) == [1]
        assert await stream.try_next() is None  # the delete is filtered out...
        after_delete = data(stream.resume_token)
        assert after_delete > data(insert["_id"]) > before  # ...but the token passed it

        await other.insert_one({"n": 2})
        assert await stream.try_next() is None
        assert data(stream.resume_token) > after_delete


async def test_start_at_operation_time_starts_at_that_event(client: Client):
    events = client.db.events
    async with await events.watch(max_await_time_ms=200) as stream:
        await events.insert_many([{"n": n} for n in range(4)])
        seen = await changes(stream, 4)
    start = seen[2]["clusterTime"]
    async with await events.watch(start_at_operation_time=start, max_await_time_ms=50) as s:
        assert values(await changes(s, 2)) == [2, 3]
        assert await s.try_next() is None


async def test_update_replace_and_delete_events(client: Client):
    events = client.db.events
    await events.insert_one({"_id": 1, "n": 1})
    async with (
        await events.watch(max_await_time_ms=200) as plain,
        await events.watch(full_document="updateLookup", max_await_time_ms=200) as looked_up,
    ):
        await events.update_one({"_id": 1}, {"$set": {"n": 2}})
        await events.replace_one({"_id": 1}, {"n": 3})
        await events.delete_one({"_id": 1})
        update, replace, delete = await changes(plain, 3)
        assert [update["operationType"], replace["operationType"]] == ["update", "replace"]
        assert "fullDocument" not in update
        assert replace["fullDocument"] == {"_id": 1, "n": 3}
        assert delete["operationType"] == "delete"
        assert delete["documentKey"] == {"_id": 1}
        assert "fullDocument" not in delete
        assert (await next_change(looked_up))["fullDocument"] == {"_id": 1, "n": 2}


async def test_cluster_streams_see_every_database(client: Client):
    async with await client.watch(max_await_time_ms=200) as stream:
        await client.one.events.insert_one({"n": 1})
        await client.two.events.insert_one({"n": 2})
        seen = await changes(stream, 2)
    assert [event["ns"]["db"] for event in seen] == ["one", "two"]


async def test_insert_many_reports_write_errors_like_mongodb(client: Client):
    events = client.db.events
    await events.create_index("k", unique=True)
    await events.insert_one({"_id": 1, "k": "a"})
    with pytest.raises(BulkWriteError) as ordered:
        await events.insert_many([{"_id": 2, "k": "b"}, {"_id": 3, "k": "a"}, {"_id": 4}])
    assert ordered.value.details["nInserted"] == 1
    assert [(e["index"], e["code"]) for e in ordered.value.details["writeErrors"]] == [(1, 11000)]
    docs = [{"_id": 5, "k": "c"}, {"_id": 1, "k": "d"}, {"_id": 6, "k": "e"}]
    with pytest.raises(BulkWriteError) as unordered:
        await events.insert_many(docs, ordered=False)
    assert unordered.value.details["nInserted"] == 2
    assert [e["index"] for e in unordered.value.details["writeErrors"]] == [1]
    assert await events.distinct("_id") == [1, 2, 5, 6]


async def test_database_streams_see_every_collection(client: Client):
    async with await client.db.watch(max_await_time_ms=200) as stream:
        await client.db.one.insert_one({"n": 1})
        await client.db.two.insert_one({"n": 2})
        await client.elsewhere.three.insert_one({"n": 3})
        await client.db.one.insert_one({"n": 4})
        seen = await changes(stream, 3)
    assert [event["ns"]["coll"] for event in seen] == ["one", "two", "one"]


async def test_dropping_a_watched_collection_invalidates_the_stream(client: Client):
    events = client.db.events
    await events.insert_one({"n": 0})
    async with await events.watch(max_await_time_ms=200) as stream:
        await events.drop()
        kinds = [change["operationType"] for change in await changes(stream, 2)]
        assert kinds == ["drop", "invalidate"]
        assert not stream.alive


async def test_no_change_is_lost_after_collections_are_dropped(client: Client):
    # mongoeco's hub alone loses one later change per dropped collection.
    async with await client.db.events.watch(max_await_time_ms=200) as stream:
        for n in range(3):
            await client.db[f"scratch{n}"].insert_one({"n": n})
            await client.db[f"scratch{n}"].drop()
        await client.db.events.insert_many([{"n": n} for n in range(3)])
        await client.db.events.insert_one({"n": 3})
        assert values(await changes(stream, 4)) == [0, 1, 2, 3]


async def test_resuming_from_lost_history_fails_with_286():
    async with EmbeddedMongoServer(history_limit=3) as server:
        client: Client = AsyncMongoClient(server.uri)
        try:
            events = client.db.events
            seen = []
            async with await events.watch(max_await_time_ms=200) as stream:
                for n in range(6):  # one at a time: a watcher that lags by 3 loses events
                    await events.insert_one({"n": n})
                    seen.append(await next_change(stream))
            with pytest.raises(OperationFailure) as lost:
                await events.watch(resume_after=seen[0]["_id"])
            assert lost.value.code == 286
            async with await events.watch(resume_after=seen[3]["_id"], max_await_time_ms=50) as s:
                assert values(await changes(s, 2)) == [4, 5]

            server.forget_history()
            with pytest.raises(OperationFailure) as forgotten:
                await events.watch(resume_after=seen[4]["_id"])
            assert forgotten.value.code == 286
        finally:
            await client.close()


async def test_a_caught_up_stream_survives_forget_history(
    server: EmbeddedMongoServer, client: Client
):
    events = client.db.events
    async with await events.watch(max_await_time_ms=50) as stream:
        await events.insert_one({"n": 1})
        await next_change(stream)
        server.forget_history()
        await events.insert_one({"n": 2})
        assert values([await next_change(stream)]) == [2]


async def test_a_standalone_server_refuses_change_streams():
    async with EmbeddedMongoServer(replica_set=None) as server:
        client: Client = AsyncMongoClient(server.uri)
        try:
            assert "setName" not in await client.admin.command("hello")
            with pytest.raises(OperationFailure) as refused:
                await client.db.events.watch()
            assert refused.value.code == 40573
            assert "only supported on replica sets" in str(refused.value)
        finally:
            await client.close()


async def test_get_more_on_an_unknown_cursor_is_cursor_not_found(client: Client):
    for cursor_id in (12345, Int64(2**40)):
        with pytest.raises(OperationFailure) as missing:
            await client.db.command({"getMore": cursor_id, "collection": "events"})
        assert missing.value.code == 43


async def test_kill_cursors_frees_a_change_stream_cursor(client: Client):
    reply = await client.db.command(
        {"aggregate": "events", "pipeline": [{"$changeStream": {}}], "cursor": {}}
    )
    cursor = reply["cursor"]
    assert cursor["ns"] == "db.events"
    assert cursor["firstBatch"] == []
    assert "_data" in cursor["postBatchResumeToken"]
    killed = await client.db.command({"killCursors": "events", "cursors": [cursor["id"]]})
    assert killed["cursorsKilled"] == [cursor["id"]]
    with pytest.raises(OperationFailure) as missing:
        await client.db.command({"getMore": cursor["id"], "collection": "events"})
    assert missing.value.code == 43


class GetMoreStarted(CommandListener):
    def __init__(self) -> None:
        self.event = asyncio.Event()

    def started(self, event: CommandStartedEvent) -> None:
        if event.command_name == "getMore":
            self.event.set()

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: Any) -> None:
        pass


async def test_dropped_connections_resume_without_loss_or_duplicates(
    server: EmbeddedMongoServer, client: Client
):
    listener = GetMoreStarted()
    watcher: Client = AsyncMongoClient(server.uri, event_listeners=[listener])
    try:
        events = watcher.db.events
        async with await events.watch(max_await_time_ms=2000) as stream:
            await client.db.events.insert_many([{"n": n} for n in range(3)])
            seen = await changes(stream, 3)

            listener.event.clear()
            waiting = asyncio.create_task(next_change(stream))
            await asyncio.wait_for(listener.event.wait(), WAIT)  # a getMore is parked
            server.drop_connections()
            await client.db.events.insert_many([{"n": n} for n in range(3, 6)])
            seen.append(await waiting)
            seen += await changes(stream, 2)

            server.drop_connections()
            await client.db.events.insert_one({"n": 6})
            seen.append(await next_change(stream))
    finally:
        await watcher.close()
    assert values(seen) == list(range(7))


async def test_the_module_runs_as_a_process_and_obeys_signals():
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "embedded.mongo",
        "--port",
        "0",
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 20)
        uri = json.loads(line)["uri"]
        assert uri.startswith("mongodb://127.0.0.1:")
        client: Client = AsyncMongoClient(uri)
        try:
            assert (await client.admin.command("hello"))["setName"] == "rs0"
            host, port = uri.removeprefix("mongodb://").split("/")[0].split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            process.send_signal(signal.SIGUSR1)
            with contextlib.suppress(ConnectionResetError):
                assert await asyncio.wait_for(reader.read(), WAIT) == b""
            writer.close()
        finally:
            await client.close()
        client = AsyncMongoClient(uri)  # the server still accepts new connections
        try:
            assert (await client.admin.command("ping"))["ok"] == 1.0
        finally:
            await client.close()
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
        assert await process.stdout.read() == b""
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
