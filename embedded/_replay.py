"""Replaying the data directory's journal (see `embedded._store`) through mongoeco's API."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from mongoeco.api import AsyncMongoClient

from embedded._history import Document

logger = logging.getLogger(__name__)


async def replay(client: AsyncMongoClient, records: Iterable[Document]) -> int:
    """Apply each record in order; return how many were applied. Consecutive puts into one
    collection are applied together: the last of each _id wins, new ones in one insert."""
    count = 0
    puts: dict[Any, Document] = {}
    puts_ns: tuple[str, str] | None = None
    for record in records:
        ns = (record["ns"][0], record["ns"][1])
        if record["op"] == "put" and ns == puts_ns:
            puts[_key(record["doc"]["_id"])] = record["doc"]
            count += 1
            continue
        if puts_ns is not None:
            await _put_all(client, puts_ns, list(puts.values()))
            puts, puts_ns = {}, None
        if record["op"] == "put":
            puts, puts_ns = {_key(record["doc"]["_id"]): record["doc"]}, ns
            count += 1
            continue
        count += await _apply(client, ns, record)
    if puts_ns is not None:
        await _put_all(client, puts_ns, list(puts.values()))
    return count


def _key(value: object) -> object:
    return repr(value)  # _ids may be unhashable (documents); their BSON form is what counts


async def _put_all(
    client: AsyncMongoClient, ns: tuple[str, str], documents: list[Document]
) -> None:
    collection = client.get_database(ns[0]).get_collection(ns[1])
    ids = [document["_id"] for document in documents]
    existing = {
        _key(doc["_id"])
        for doc in await collection.find({"_id": {"$in": ids}}, {"_id": 1}).to_list()
    }
    fresh = [document for document in documents if _key(document["_id"]) not in existing]
    if fresh:
        await collection.insert_many(fresh)
    for document in documents:
        if _key(document["_id"]) in existing:
            await collection.replace_one({"_id": document["_id"]}, document)


async def _apply(client: AsyncMongoClient, ns: tuple[str, str], record: Document) -> int:
    db_name, coll_name = ns
    database = client.get_database(db_name)
    op = record["op"]
    if op == "drop" and coll_name is None:
        await client.drop_database(db_name)
    elif op == "drop":
        await database.drop_collection(coll_name)
    elif op == "delete":
        await database.get_collection(coll_name).delete_one({"_id": record["id"]})
    elif op == "indexes":
        await _indexes(database, coll_name, record["indexes"])
    else:
        logger.warning("journal: unknown record %r skipped", op)
        return 0
    return 1


async def _indexes(database: Any, coll_name: str, wanted: list[Document]) -> None:
    """Make the collection's indexes those of `wanted` (creating the collection if missing)."""
    if coll_name not in await database.list_collection_names():
        await database.create_collection(coll_name)
    reply = await database.command({"listIndexes": coll_name})
    current = {index["name"]: _spec(index) for index in reply["cursor"]["firstBatch"]}
    target = {index["name"]: _spec(index) for index in wanted}
    for name, spec in current.items():
        if name != "_id_" and target.get(name) != spec:
            await database.command({"dropIndexes": coll_name, "index": name})
    missing = [spec for name, spec in target.items() if current.get(name) != spec]
    missing = [spec for spec in missing if spec["name"] != "_id_"]
    if missing:
        await database.command({"createIndexes": coll_name, "indexes": missing})


def _spec(index: Document) -> Document:
    return {key: value for key, value in index.items() if key not in ("v", "ns")}
