"""The MongoDB client and the collections the service owns."""

from __future__ import annotations

import dataclasses
from typing import Any

from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

type Document = dict[str, Any]


def connect(url: str, **options: Any) -> AsyncMongoClient[Document]:
    """A client with the options the service relies on: aware UTC datetimes, a short server wait.

    No client-wide operation timeout: a request bounds its own operations with
    `pymongo.timeout(REQUEST_TIMEOUT)` (app/limits/deadline.py), while the feeds wait out an
    outage and go on (a stalled server is noticed by PyMongo's monitor, which interrupts them).
    A client-wide `timeoutMS` made overload worse: reads that timed out were retried by
    reconnecting clients while the server still worked on the abandoned ones.
    """
    options.setdefault("tz_aware", True)
    options.setdefault("appname", "agentstream")
    options.setdefault("serverSelectionTimeoutMS", 5_000)
    return AsyncMongoClient(url, **options)


async def is_replica_set(client: AsyncMongoClient[Document]) -> bool:
    """True on a replica set or through mongos: where multi-document transactions exist."""
    hello = await client.admin.command("hello")
    return "setName" in hello or hello.get("msg") == "isdbgrid"


@dataclasses.dataclass(frozen=True, slots=True)
class Collections:
    db: AsyncDatabase[Document]
    events: AsyncCollection[Document]
    messages: AsyncCollection[Document]
    runs: AsyncCollection[Document]
    sessions: AsyncCollection[Document]
    meta: AsyncCollection[Document]

    @classmethod
    def of(cls, client: AsyncMongoClient[Document], db_name: str) -> Collections:
        db = client[db_name]
        return cls(
            db=db,
            events=db["events"],
            messages=db["messages"],
            runs=db["runs"],
            sessions=db["sessions"],
            meta=db["_migrations"],
        )


async def upsert(
    collection: AsyncCollection[Document],
    query: Document,
    update: Document,
    *,
    return_document: bool = ReturnDocument.AFTER,
    projection: Document | None = None,
) -> Document | None:
    """findAndModify with upsert, retried once: when two first upserts of one key race, the
    loser's insert hits the unique index, and its retry finds the winner's document."""
    for attempt in range(2):
        try:
            return await collection.find_one_and_update(
                query, update, upsert=True, projection=projection, return_document=return_document
            )
        except DuplicateKeyError:
            if attempt:
                raise
    raise AssertionError("unreachable")
