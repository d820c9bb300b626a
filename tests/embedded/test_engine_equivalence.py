"""The embedded server's indexed engine answers exactly as mongoeco's own memory engine.

Random sequences of the writes and reads the product makes (app/store, app/stats, app/runs,
worker) run against both engines side by side; every answer, error included, must match.
Values mix types (numbers, strings, null, missing, dates, arrays) where the product never
would, so the ordered indexes' type order and their fallbacks are exercised too.
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

from bson import ObjectId
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mongoeco.api import AsyncMongoClient
from mongoeco.engines.memory import MemoryEngine
from mongoeco.errors import PyMongoError

from embedded.engine import IndexedMemoryEngine

NOW = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
TIMES = [NOW - datetime.timedelta(hours=3), NOW - datetime.timedelta(seconds=5), NOW, NOW]
SESSIONS = ["a", "b", "c"]

INDEXES: dict[str, list[tuple[list[tuple[str, int]], dict[str, Any]]]] = {
    "events": [
        ([("session_id", 1), ("seq", 1)], {"name": "session_seq", "unique": True}),
        ([("session_id", 1), ("timestamp", 1)], {"name": "session_timestamp"}),
        ([("event_id", 1)], {"name": "event_id", "unique": True}),
        ([("trace_id", 1)], {"name": "trace_id"}),
        ([("timestamp", 1)], {"name": "timestamp_ttl", "expire_after_seconds": 3600}),
    ],
    "sessions": [([("updated_at", 1)], {"name": "updated_ttl", "expire_after_seconds": 3600})],
}

ODD_SEQS: list[Any] = [None, "7", 2.5, True, NOW, [3, 4], {"n": 1}]
seqs = st.integers(-12, 12).map(lambda n: n if n >= 0 else ODD_SEQS[-n % len(ODD_SEQS)])
seqs = st.one_of(seqs, st.integers(0, 12).map(float))
sessions = st.sampled_from(SESSIONS)
times = st.sampled_from(TIMES)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": ObjectId(),
        "session_id": draw(sessions),
        "event_id": draw(st.sampled_from([f"e{i}" for i in range(12)] + ["run.1", "run.2"])),
        "trace_id": draw(st.sampled_from([None, "t1", "t2"])),
        "type": "t",
        "data": {"k": draw(st.integers(0, 3))},
        "timestamp": draw(times),
    }
    if draw(st.booleans()):
        doc["seq"] = draw(seqs)
    if draw(st.integers(0, 5)) == 0:
        doc["void"] = True
    if draw(st.integers(0, 9)) == 0:
        del doc["session_id"]
    return doc


def event_filters() -> st.SearchStrategy[dict[str, Any]]:
    session = sessions
    return st.one_of(
        st.builds(lambda s, q: {"session_id": s, "seq": {"$gt": q}}, session, seqs),
        st.builds(
            lambda s, q: {"session_id": s, "seq": {"$gte": q, "$lt": q + 5}},
            session,
            st.integers(0, 12),
        ),
        st.builds(
            lambda s, qs: {"session_id": s, "seq": {"$in": qs}}, session, st.lists(seqs, max_size=4)
        ),
        st.builds(
            lambda s, t: {"session_id": s, "void": {"$ne": True}, "timestamp": {"$lt": t}},
            session,
            times,
        ),
        st.builds(
            lambda s, t: {"session_id": s, "timestamp": t, "void": {"$ne": True}}, session, times
        ),
        st.builds(lambda s: {"session_id": s}, session),
        st.builds(
            lambda e: {"event_id": e, "void": {"$ne": True}}, st.sampled_from(["e1", "e2", "run.1"])
        ),
        st.builds(lambda t: {"trace_id": t}, st.sampled_from([None, "t1", "t2"])),
        st.builds(
            lambda s: {"session_id": s, "event_id": {"$gte": "run.", "$lt": "run/"}}, session
        ),
        st.builds(
            lambda a, b, q: {
                "$or": [
                    {"session_id": a, "seq": {"$gt": q, "$lte": q + 3}},
                    {"session_id": b, "seq": {"$gt": q}},
                ]
            },
            session,
            session,
            st.integers(0, 10),
        ),
        st.just({"void": {"$ne": True}}),
        st.just({}),
    )


SORTS = [
    None,
    [("seq", 1)],
    [("seq", -1)],
    [("timestamp", -1)],
    [("timestamp", 1), ("session_id", 1), ("seq", 1)],
    [("timestamp", 1), ("_id", 1)],
]
HINTS = [None, "session_seq", "session_timestamp", "event_id", "trace_id", "timestamp_ttl", "nope"]

finds = st.tuples(
    st.just("find"),
    event_filters(),
    st.sampled_from(SORTS),
    st.sampled_from([None, 0, 1, 2, 5, 100]),
    st.integers(0, 2),
    st.sampled_from(HINTS),
)
inserts = st.tuples(st.just("insert"), st.lists(events(), min_size=1, max_size=6), st.booleans())
updates = st.tuples(
    st.just("update"),
    event_filters(),
    st.sampled_from(
        [
            {"$set": {"data.k": 9}},
            {"$inc": {"seq": 1}},
            {"$max": {"timestamp": NOW}},
            {"$set": {"seq": 3, "session_id": "a"}},
            {"$set": {"session_id": "b"}},
        ]
    ),
    st.booleans(),
    st.booleans(),
)
counters = st.tuples(st.just("counter"), sessions, st.integers(1, 4), times)
deletes = st.tuples(st.just("delete"), event_filters(), st.booleans())
counts = st.tuples(st.just("count"), event_filters())
operations = st.lists(
    st.one_of(inserts, inserts, finds, finds, updates, counters, deletes, counts), max_size=30
)


def outcome_of_error(error: PyMongoError) -> tuple[Any, ...]:
    details = getattr(error, "details", None)
    if isinstance(details, dict):
        details = {k: v for k, v in details.items() if k not in ("op",)}
    return (type(error).__name__, getattr(error, "code", None), repr(details))


def strip_ids(value: Any) -> Any:
    if isinstance(value, list):
        return [strip_ids(v) for v in value]
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k != "_id"}
    return value


async def run(client: AsyncMongoClient, operation: tuple[Any, ...]) -> Any:
    db = client.get_database("d")
    events_ = db.get_collection("events")
    kind = operation[0]
    try:
        if kind == "insert":
            _, docs, ordered = operation
            result = await events_.insert_many([dict(d) for d in docs], ordered=ordered)
            return len(result.inserted_ids)
        if kind == "find":
            _, query, sort, limit, skip, hint = operation
            cursor = events_.find(query, {"_id": 0}).skip(skip)
            if sort is not None:
                cursor = cursor.sort(sort)
            if limit is not None:
                cursor = cursor.limit(limit)
            if hint is not None:
                cursor = cursor.hint(hint)
            return await cursor.to_list()
        if kind == "update":
            _, query, update, upsert, many = operation
            method = events_.update_many if many else events_.update_one
            result = await method(query, update, upsert=upsert)
            return (result.matched_count, result.modified_count, result.upserted_id is None)
        if kind == "counter":
            _, session, count, now = operation
            doc = await db.get_collection("sessions").find_one_and_update(
                {"_id": session},
                {"$inc": {"seq": count}, "$max": {"ts": now}, "$set": {"updated_at": now}},
                upsert=True,
                return_document=True,
            )
            return doc
        if kind == "delete":
            _, query, many = operation
            method = events_.delete_many if many else events_.delete_one
            return (await method(query)).deleted_count
        _, query = operation
        return await events_.count_documents(query)
    except PyMongoError as error:
        return outcome_of_error(error)


async def compare(operations: list[tuple[Any, ...]]) -> None:
    reference = AsyncMongoClient(MemoryEngine())
    indexed = AsyncMongoClient(IndexedMemoryEngine())
    async with reference, indexed:
        for client in (reference, indexed):
            for coll, specs in INDEXES.items():
                for keys, options in specs:
                    await (
                        client.get_database("d").get_collection(coll).create_index(keys, **options)
                    )
        for step, operation in enumerate(operations):
            expected = strip_ids(await run(reference, operation))
            actual = strip_ids(await run(indexed, operation))
            assert actual == expected, f"step {step}: {operation!r}"
        for coll in INDEXES:
            everything = [
                strip_ids(await client.get_database("d").get_collection(coll).find().to_list())
                for client in (reference, indexed)
            ]
            assert everything[0] == everything[1]


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(operations)
def test_indexed_engine_answers_as_mongoeco(operations: list[tuple[Any, ...]]) -> None:
    asyncio.run(compare(operations))
