"""Replaying the data directory's journal (see `embedded._store`) through mongoeco's API."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from mongoeco.api import AsyncMongoClient

from embedded._history import Document

logger = logging.getLogger(__name__)


async def replay(client: AsyncMongoClient, records: Iterable[Document]) -> int:
    """Apply each record in order; return how many were applied."""
    count = 0
    for record in records:
        db_name, coll_name = record["ns"]
        database = client.get_database(db_name)
        op = record["op"]
        if op == "drop" and coll_name is None:
            await client.drop_database(db_name)
        elif op == "drop":
            await database.drop_collection(coll_name)
        elif op == "put":
            document = record["doc"]
            await database.get_collection(coll_name).replace_one(
                {"_id": document["_id"]}, document, upsert=True
            )
        elif op == "delete":
            await database.get_collection(coll_name).delete_one({"_id": record["id"]})
        elif op == "indexes":
            await _indexes(database, coll_name, record["indexes"])
        else:
            logger.warning("journal: unknown record %r skipped", op)
            continue
        count += 1
    return count


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
