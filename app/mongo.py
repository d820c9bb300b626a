"""The MongoDB client and the collections the service owns."""

from __future__ import annotations

import dataclasses
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

type Document = dict[str, Any]


def connect(url: str, **options: Any) -> AsyncMongoClient[Document]:
    """A client with the options the service relies on: aware UTC datetimes, a short server wait."""
    options.setdefault("tz_aware", True)
    options.setdefault("appname", "agentstream")
    options.setdefault("serverSelectionTimeoutMS", 5_000)
    return AsyncMongoClient(url, **options)


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
