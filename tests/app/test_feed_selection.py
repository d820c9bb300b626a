"""SSE_FEED=auto takes the change stream on a replica set and polling on a standalone."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import httpx
import pytest

from app.application import create_app
from app.feeds.select import FeedUnavailable
from app.settings import FeedMode, Secret, Settings
from support.servers import MongoSource, mongo_source, running_api


@pytest.fixture(scope="module")
def standalone() -> Iterator[MongoSource]:
    """A server that answers like a standalone mongod: $changeStream fails with 40573."""
    with mongo_source(standalone=True) as source:
        yield source


async def mode(settings: Settings) -> str:
    async with running_api(settings) as api, httpx.AsyncClient(base_url=api.url) as client:
        ready = (await client.get("/readyz")).json()
        await api.services.mongo.drop_database(settings.mongo_db)
    return str(ready["checks"]["feed"]["mode"])


async def test_auto_uses_the_change_stream_on_a_replica_set(settings: Settings) -> None:
    assert await mode(settings) == "change_stream"


async def test_auto_falls_back_to_polling_on_a_standalone(
    settings: Settings, standalone: MongoSource
) -> None:
    on_standalone = dataclasses.replace(settings, mongo_url=Secret(standalone.url))
    assert await mode(on_standalone) == "poll"


async def test_poll_can_be_forced(settings: Settings) -> None:
    assert await mode(dataclasses.replace(settings, sse_feed=FeedMode.POLL)) == "poll"


async def test_change_stream_demanded_on_a_standalone_stops_startup(
    settings: Settings, standalone: MongoSource
) -> None:
    demanding = dataclasses.replace(
        settings, mongo_url=Secret(standalone.url), sse_feed=FeedMode.CHANGE_STREAM
    )
    app = create_app(demanding)
    with pytest.raises(FeedUnavailable, match="SSE_FEED=change_stream, but the server"):
        async with app.router.lifespan_context(app):
            pass
