"""MongoDB and Redis for a benchmark run: MONGO_URL / REDIS_URL when set, else embedded ones.

The embedded MongoDB is the development stand-in (mongoeco behind embedded/): every command is
interpreted Python, so figures that depend on database speed only mean something with
MONGO_URL pointing at a real MongoDB.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator

from app.migrations import migrate
from app.mongo import Collections, connect
from app.settings import Secret, Settings
from bench.procs import child_env
from embedded.redis import start_redis, stop
from embedded.runner import start_mongo

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Backends:
    mongo_url: str
    redis_url: str
    mongo_process: subprocess.Popen[bytes] | None = None

    @property
    def embedded(self) -> bool:
        """True when MongoDB is the embedded stand-in (its speed is not MongoDB's)."""
        return self.mongo_process is not None

    @property
    def mongo_pid(self) -> int | None:
        return None if self.mongo_process is None else self.mongo_process.pid

    @property
    def mongo_kind(self) -> str:
        return "embedded stand-in (mongoeco)" if self.embedded else "MONGO_URL"

    def env(self, db: str, **extra: str) -> dict[str, str]:
        """The environment of a child process that uses database `db`.

        The stream caps are lifted: every load client connects from 127.0.0.1, one subject,
        which SSE_MAX_CONNECTIONS_PER_SUBJECT (100) would refuse. The storm part sets them.
        """
        return child_env(
            {
                "MONGO_URL": self.mongo_url,
                "REDIS_URL": self.redis_url,
                "MONGO_DB": db,
                "SSE_MAX_CONNECTIONS": str(UNCAPPED),
                "SSE_MAX_CONNECTIONS_PER_SUBJECT": str(UNCAPPED),
                **extra,
            }
        )

    def settings(self, db: str) -> Settings:
        return Settings(
            mongo_url=Secret(self.mongo_url), redis_url=Secret(self.redis_url), mongo_db=db
        )


@contextlib.contextmanager
def backends() -> Iterator[Backends]:
    mongo_url, redis_url = os.environ.get("MONGO_URL"), os.environ.get("REDIS_URL")
    started: list[subprocess.Popen[bytes]] = []
    mongo_process = None
    try:
        if not mongo_url:
            mongo_process, mongo_url = start_mongo(child_env())
            started.append(mongo_process)
            logger.info("embedded MongoDB stand-in at %s", mongo_url)
        if not redis_url:
            redis_process, redis_url = start_redis()
            started.append(redis_process)
        yield Backends(mongo_url, redis_url, mongo_process)
    finally:
        for process in reversed(started):
            stop(process)


UNCAPPED = 10_000_000


def fresh_db(tag: str) -> str:
    return f"bench_{tag}_{uuid.uuid4().hex[:6]}"


@contextlib.asynccontextmanager
async def database(backends: Backends, tag: str) -> AsyncIterator[tuple[str, Collections]]:
    """A new, migrated database for one phase; dropped at the end of it."""
    name = fresh_db(tag)
    client = connect(backends.mongo_url)
    collections = Collections.of(client, name)
    try:
        await migrate(collections, backends.settings(name))
        yield name, collections
    finally:
        await client.drop_database(name)
        await client.close()
