"""The one fixture module: MongoDB, Redis, settings, a migrated database and a running API.

MongoDB comes from MONGO_URL, else a testcontainers replica set when a Docker engine answers,
else the embedded MongoDB-protocol server. Redis comes from REDIS_URL, else a real server on
a free port. Each test gets a database of its own, dropped afterwards.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from app.migrations import migrate
from app.mongo import Collections, connect
from app.settings import AuthMode, FeedMode, Secret, Settings
from support.browser import browser  # noqa: F401  (the `browser` fixture)
from support.jwt_api import with_jwt
from support.servers import MongoSource, RunningAPI, mongo_source, redis_source, running_api
from support.worker import WorkerProcess, spawn_worker_process


@pytest.fixture(scope="session")
def mongo() -> Iterator[MongoSource]:
    with mongo_source() as source:
        yield source


@pytest.fixture(scope="session")
def mongo_url(mongo: MongoSource) -> str:
    return mongo.url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_source() as url:
        yield url


@pytest.fixture
def settings(mongo_url: str, redis_url: str) -> Settings:
    """Auth is off here: tests of access control (tests/auth) turn it on with a key."""
    return Settings(
        auth_mode=AuthMode.OFF,
        mongo_url=Secret(mongo_url),
        redis_url=Secret(redis_url),
        mongo_db=f"test_{uuid.uuid4().hex[:12]}",
        host="127.0.0.1",
        port=0,
        sse_poll_interval=0.05,
        sse_heartbeat=5.0,
        sse_gap_timeout=1.0,
        shutdown_grace=5.0,
        worker_metrics_port=0,
    )


@pytest.fixture(params=[FeedMode.CHANGE_STREAM, FeedMode.POLL], ids=["change_stream", "poll"])
def feed_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The settings once per feed mode: tests using this run in both modes."""
    return dataclasses.replace(settings, sse_feed=request.param)


@pytest.fixture
async def collections(settings: Settings) -> AsyncIterator[Collections]:
    client = connect(settings.mongo_url.get() if settings.mongo_url else "")
    found = Collections.of(client, settings.mongo_db)
    await migrate(found, settings)
    try:
        yield found
    finally:
        await client.drop_database(settings.mongo_db)
        await client.close()


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[RunningAPI]:
    async with running_api(settings) as running:
        yield running
        await running.services.mongo.drop_database(settings.mongo_db)


@pytest.fixture
async def feed_api(feed_settings: Settings) -> AsyncIterator[RunningAPI]:
    async with running_api(feed_settings) as running:
        yield running
        await running.services.mongo.drop_database(feed_settings.mongo_db)


@pytest.fixture
async def short_stream_api(settings: Settings) -> AsyncIterator[RunningAPI]:
    """An API whose streams end after one second, with a 100 ms retry hint."""
    short = dataclasses.replace(settings, sse_timeout=1.0, sse_retry_ms=100, sse_heartbeat=0.3)
    async with running_api(short) as running:
        yield running
        await running.services.mongo.drop_database(short.mongo_db)


@pytest.fixture
async def jwt_api(settings: Settings) -> AsyncIterator[RunningAPI]:
    """The API with access control on (AUTH_MODE=jwt, the test secret)."""
    secured = with_jwt(settings)
    async with running_api(secured) as running:
        yield running
        await running.services.mongo.drop_database(secured.mongo_db)


@pytest.fixture
def spawn_worker(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start `python -m worker` processes with the requesting suite's `settings`; every one
    still running at the end is killed."""
    started: list[WorkerProcess] = []

    def spawn(*args: str, **env: str) -> WorkerProcess:
        found = spawn_worker_process(
            settings, tmp_path / f"worker-{len(started)}.log", *args, **env
        )
        started.append(found)
        return found

    yield spawn
    for item in started:
        if item.process.poll() is None:
            item.process.kill()
            item.process.wait(10)
