"""The embedded server's data directory: what it held is there again after a restart."""

from __future__ import annotations

import datetime
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from app.migrations import migrate
from app.mongo import Collections, connect
from app.settings import Settings
from app.store.events import EventWriter, NewEvent
from app.store.history import History
from app.store.messages import MessageStore
from app.store.runs import RunStore
from embedded.mongo import EmbeddedMongoServer
from embedded.redis import stop
from embedded.runner import start_mongo

DB = "agentstream"


@asynccontextmanager
async def serving(data_dir: Path) -> AsyncIterator[Collections]:
    async with EmbeddedMongoServer(data_dir=data_dir) as server:
        client = connect(server.uri)
        try:
            yield Collections.of(client, DB)
        finally:
            await client.close()


async def write_a_day(collections: Collections) -> list[dict[str, Any]]:
    await migrate(collections, Settings())
    writer = EventWriter(collections)
    stored = await writer.append("s1", [NewEvent("note", {"n": n}) for n in range(50)])
    stored += await writer.append("s2", [NewEvent("note", {"n": 1}, event_id="fixed")])
    await MessageStore(collections).put(
        message_id="m1", session_id="s1", role="agent", content="hi"
    )
    await RunStore(collections).ensure("r1", "s1", "echo", "t")
    await collections.events.delete_one({"event_id": stored[0]["event_id"]})
    await collections.events.update_one({"event_id": "fixed"}, {"$set": {"data.n": 2}})
    return stored


async def index_names(collections: Collections) -> dict[str, list[str]]:
    names = {}
    for name in ("events", "messages", "runs", "sessions"):
        cursor = await collections.db[name].list_indexes()
        names[name] = sorted([index["name"] async for index in cursor])
    return names


async def test_a_clean_restart_keeps_documents_indexes_and_resume_tokens(tmp_path: Path):
    async with serving(tmp_path) as collections:
        stored = await write_a_day(collections)
        indexes = await index_names(collections)
        async with await collections.events.watch() as stream:
            token = stream.resume_token
        events = await collections.events.find({}, {"_id": 0}).sort("seq", 1).to_list()
        counters = await collections.sessions.find().to_list()
    assert (tmp_path / "snapshot.pickle").exists()

    async with serving(tmp_path) as collections:
        assert await collections.events.find({}, {"_id": 0}).sort("seq", 1).to_list() == events
        assert await collections.sessions.find().to_list() == counters
        assert await index_names(collections) == indexes
        assert (await collections.messages.find_one({"message_id": "m1"}))["content"] == "hi"
        assert (await collections.runs.find_one({"run_id": "r1"}))["status"] == "queued"
        assert (await collections.events.find_one({"event_id": "fixed"}))["data"] == {"n": 2}
        with pytest.raises(DuplicateKeyError):  # the unique indexes hold what came before
            await collections.events.insert_one({"session_id": "s1", "seq": 2, "event_id": "x"})
        more = await EventWriter(collections).append("s1", [NewEvent("note", {"n": 50})])
        assert more[0]["seq"] == stored[49]["seq"] + 1  # the counter went on
        page = await History(collections).after("s1", 40, 100)
        assert [doc["seq"] for doc in page] == list(range(41, 52))
        # A stream resumes from the last token of the previous run: it sees what came after.
        async with await collections.events.watch(resume_after=token) as stream:
            await collections.events.insert_one({"session_id": "s3", "seq": 1, "event_id": "y"})
            changes = [await stream.next(), await stream.next()]
        after = [change["fullDocument"]["event_id"] for change in changes]
        assert after == [more[0]["event_id"], "y"]


async def test_a_killed_server_loses_nothing_it_acknowledged(tmp_path: Path):
    process, uri = start_mongo(dict(os.environ), extra_args=["--data-dir", str(tmp_path)])
    try:
        client: AsyncMongoClient[dict[str, Any]] = connect(uri)
        collections = Collections.of(client, DB)
        await write_a_day(collections)
        await collections.db.drop_collection("runs")
        events = await collections.events.find({}, {"_id": 0}).sort("seq", 1).to_list()
        await client.close()
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    assert not (tmp_path / "snapshot.pickle").exists()  # all of it is in the journal

    async with serving(tmp_path) as collections:  # replays the journal, then snapshots
        assert await collections.events.find({}, {"_id": 0}).sort("seq", 1).to_list() == events
        assert "runs" not in await collections.db.list_collection_names()
        assert (await index_names(collections))["events"] == [
            "_id_",
            "event_id",
            "session_seq",
            "session_timestamp",
            "timestamp_ttl",
            "trace_id",
        ]
    assert (tmp_path / "snapshot.pickle").exists()
    assert (tmp_path / "journal.bson").stat().st_size == 0


async def test_without_a_data_dir_nothing_is_written(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    process, uri = start_mongo(dict(os.environ))
    try:
        client: AsyncMongoClient[dict[str, Any]] = connect(uri)
        await client[DB].events.insert_one({"at": datetime.datetime.now(datetime.UTC)})
        await client.close()
    finally:
        stop(process)
    assert list(tmp_path.iterdir()) == []
