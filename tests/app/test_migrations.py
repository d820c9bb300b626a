import dataclasses
import datetime

import pytest

from app.migrations import MigrationError, applied_version, migrate
from app.migrations.spec import DAY, SCHEMA_VERSION
from app.mongo import Collections
from app.settings import Settings


async def indexes(collections: Collections, name: str) -> dict[str, dict[str, object]]:
    cursor = await collections.db[name].list_indexes()
    return {doc["name"]: dict(doc) async for doc in cursor}


def shape(index: dict[str, object]) -> tuple[object, ...]:
    key = index["key"]
    assert isinstance(key, dict)
    return (list(key.items()), bool(index.get("unique")), index.get("expireAfterSeconds"))


async def test_every_index_has_its_keys_and_options(collections: Collections) -> None:
    events = await indexes(collections, "events")
    assert shape(events["session_seq"]) == ([("session_id", 1), ("seq", 1)], True, None)
    assert shape(events["session_timestamp"]) == (
        [("session_id", 1), ("timestamp", 1)],
        False,
        None,
    )
    assert shape(events["event_id"]) == ([("event_id", 1)], True, None)
    assert shape(events["trace_id"]) == ([("trace_id", 1)], False, None)
    assert shape(events["timestamp_ttl"]) == ([("timestamp", 1)], False, 7 * DAY)

    messages = await indexes(collections, "messages")
    assert shape(messages["session_timestamp"]) == (
        [("session_id", 1), ("timestamp", 1)], False, None,
    )  # fmt: skip
    assert shape(messages["message_id"]) == ([("message_id", 1)], True, None)
    assert shape(messages["parent_id"]) == ([("parent_id", 1)], False, None)
    assert shape(messages["trace_id"]) == ([("trace_id", 1)], False, None)
    assert shape(messages["timestamp_ttl"]) == ([("timestamp", 1)], False, 30 * DAY)

    runs = await indexes(collections, "runs")
    assert shape(runs["run_id"]) == ([("run_id", 1)], True, None)
    assert shape(runs["session_created"]) == ([("session_id", 1), ("created_at", 1)], False, None)
    assert shape(runs["created_ttl"]) == ([("created_at", 1)], False, 30 * DAY)

    sessions = await indexes(collections, "sessions")
    assert shape(sessions["updated_ttl"]) == ([("updated_at", 1)], False, 8 * DAY)
    assert await applied_version(collections) == SCHEMA_VERSION


async def test_a_second_run_changes_nothing(collections: Collections, settings: Settings) -> None:
    before = {name: await indexes(collections, name) for name in ("events", "messages", "runs")}
    assert await migrate(collections, settings) == []
    after = {name: await indexes(collections, name) for name in ("events", "messages", "runs")}
    assert after == before


async def test_a_retention_change_uses_collmod_and_keeps_the_data(
    collections: Collections, settings: Settings
) -> None:
    old = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=2)
    await collections.events.insert_one(
        {"event_id": "e1", "session_id": "s", "seq": 1, "type": "t", "data": {}, "timestamp": old}
    )
    await collections.messages.insert_one(
        {"message_id": "m1", "session_id": "s", "role": "user", "content": "hi", "timestamp": old}
    )
    index_ids = {n["name"]: n.get("v") for n in (await indexes(collections, "events")).values()}
    shorter = dataclasses.replace(settings, event_retention_days=3, message_retention_days=5)

    changes = await migrate(collections, shorter)

    assert sorted(str(c) for c in changes) == [
        "changed events.timestamp_ttl: TTL 604800s -> 259200s (collMod, data kept)",
        "changed messages.timestamp_ttl: TTL 2592000s -> 432000s (collMod, data kept)",
        "changed runs.created_ttl: TTL 2592000s -> 432000s (collMod, data kept)",
        "changed sessions.updated_ttl: TTL 691200s -> 345600s (collMod, data kept)",
    ]
    assert (await indexes(collections, "events"))["timestamp_ttl"]["expireAfterSeconds"] == 3 * DAY
    assert (await indexes(collections, "messages"))["timestamp_ttl"][
        "expireAfterSeconds"
    ] == 5 * DAY
    assert set(index_ids) == set(await indexes(collections, "events"))
    assert await collections.events.count_documents({}) == 1
    assert await collections.messages.count_documents({}) == 1
    assert await migrate(collections, shorter) == []


async def test_a_conflicting_index_is_reported_not_dropped(
    collections: Collections, settings: Settings
) -> None:
    await collections.db["events"].drop_index("trace_id")
    await collections.events.create_index([("trace_id", 1)], name="trace_id", unique=True)
    with pytest.raises(MigrationError, match=r"events\.trace_id exists with unique=True"):
        await migrate(collections, settings)
    assert "trace_id" in await indexes(collections, "events")
