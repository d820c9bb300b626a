"""The database stalls, or its connections are cut, while 50 clients stream and 4 writers write.

Writers retry every failure (503, timeout, transport error) with the same event_id. Afterwards
every acknowledged event is in the history once, every client holds the whole history once and
in order, the API's memory stayed bounded and it is ready again by itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from app.migrations import migrate
from app.mongo import Collections, connect
from app.settings import Secret, Settings
from embedded.redis import stop
from embedded.runner import start_mongo
from support.faults import (
    Follower,
    Writer,
    api_process,
    assert_nothing_lost_or_doubled,
    following,
)
from support.tcpproxy import TCPProxy
from support.waits import eventually

pytestmark = pytest.mark.timeout(150)

CLIENTS = 50
WRITERS = 4
RSS_BOUND = 400 * 1024 * 1024


@pytest.fixture
def stallable(settings: Settings) -> Iterator[tuple[Settings, int]]:
    """Settings on an embedded MongoDB-protocol server of this test's own, and its pid: the
    test stops and continues that process, which must not be the suite's shared server."""
    process, url = start_mongo(dict(os.environ))
    try:
        yield dataclasses.replace(settings, mongo_url=Secret(url)), process.pid
    finally:
        os.kill(process.pid, signal.SIGCONT)
        stop(process)


@pytest.fixture
async def own_collections(stallable: tuple[Settings, int]) -> AsyncIterator[Collections]:
    settings, _ = stallable
    assert settings.mongo_url is not None
    client = connect(settings.mongo_url.get())
    found = Collections.of(client, settings.mongo_db)
    await migrate(found, settings)
    yield found
    await client.close()


async def delivered(followers: list[Follower], count: int) -> None:
    await eventually(lambda: all(len(f.ids) >= count for f in followers), 60, "delivery")


async def written(writers: list[Writer], count: int) -> None:
    await asyncio.gather(*(w.write(count) for w in writers))


async def test_a_database_stall_loses_and_doubles_nothing(
    stallable: tuple[Settings, int], own_collections: Collections, tmp_path: Path
) -> None:
    settings, mongo_pid = stallable
    async with (
        api_process(settings, tmp_path / "api.log") as api,
        httpx.AsyncClient(base_url=api.url) as client,
        following(api.url, "stall", CLIENTS) as followers,
    ):
        writers = [Writer(client, "stall", f"w{n}") for n in range(WRITERS)]
        await written(writers, 3)
        await delivered(followers, 3 * WRITERS)

        os.kill(mongo_pid, signal.SIGSTOP)
        try:
            pending = asyncio.gather(*(w.write(3) for w in writers))
            # The stall lasts until every writer has seen a write fail (its 1.5 s client
            # timeout, or the API's 503 after REQUEST_TIMEOUT=1 s): longer than both.
            await eventually(lambda: all(w.failures for w in writers), 60, "writes to fail")
            assert not pending.done()
        finally:
            os.kill(mongo_pid, signal.SIGCONT)
        await asyncio.wait_for(pending, 60)
        await written(writers, 3)
        await api.ready()
        await assert_nothing_lost_or_doubled(own_collections, "stall", writers, followers)
        assert api.rss_bytes() < RSS_BOUND


async def test_cut_database_connections_lose_and_double_nothing(
    settings: Settings, collections: Collections, tmp_path: Path
) -> None:
    assert settings.mongo_url is not None
    async with TCPProxy.for_url(settings.mongo_url.get()) as proxy:
        proxied = dataclasses.replace(
            settings, mongo_url=Secret(proxy.url_through(settings.mongo_url.get()))
        )
        async with (
            api_process(proxied, tmp_path / "api.log") as api,
            httpx.AsyncClient(base_url=api.url) as client,
            following(api.url, "cut", CLIENTS) as followers,
        ):
            writers = [Writer(client, "cut", f"w{n}") for n in range(WRITERS)]
            await written(writers, 3)
            for _ in range(3):  # every connection dropped, then writes under way, thrice
                pending = asyncio.gather(*(w.write(3) for w in writers))
                proxy.cut()
                await asyncio.wait_for(pending, 60)
            await api.ready()
            await assert_nothing_lost_or_doubled(collections, "cut", writers, followers)
            assert proxy.cuts >= 3
            assert api.rss_bytes() < RSS_BOUND
