"""SSE_FEED=auto: the change stream where the deployment has one, polling elsewhere."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pymongo.errors import OperationFailure

from app.feeds.base import Feed, Publisher
from app.feeds.change_stream import ChangeStreamFeed
from app.feeds.polling import PollingFeed
from app.settings import FeedMode

if TYPE_CHECKING:
    from pymongo import AsyncMongoClient

    from app.mongo import Collections, Document
    from app.settings import Settings

logger = logging.getLogger(__name__)

NOT_A_REPLICA_SET = 40573


class FeedUnavailable(RuntimeError):
    pass


async def change_streams_supported(
    client: AsyncMongoClient[Document], collections: Collections
) -> tuple[bool, str]:
    hello = await client.admin.command("hello")
    if "setName" not in hello and hello.get("msg") != "isdbgrid":
        return False, "the server is a standalone (hello has no setName)"
    try:
        stream = await collections.events.watch(max_await_time_ms=1)
        await stream.close()
    except OperationFailure as exc:
        if exc.code == NOT_A_REPLICA_SET or "replica set" in str(exc):
            return False, f"the server refuses $changeStream ({exc.code})"
        raise
    return True, f"replica set {hello.get('setName', 'mongos')}"


async def choose_feed(
    settings: Settings,
    client: AsyncMongoClient[Document],
    collections: Collections,
    publisher: Publisher,
) -> Feed:
    feed: Feed
    if settings.sse_feed is FeedMode.POLL:
        reason = "SSE_FEED=poll"
        feed = PollingFeed(
            publisher, interval=settings.sse_poll_interval, gap_timeout=settings.sse_gap_timeout
        )
    else:
        supported, reason = await change_streams_supported(client, collections)
        if supported:
            feed = ChangeStreamFeed(
                collections.events, publisher, gap_timeout=settings.sse_gap_timeout
            )
        elif settings.sse_feed is FeedMode.CHANGE_STREAM:
            raise FeedUnavailable(f"SSE_FEED=change_stream, but {reason}")
        else:
            feed = PollingFeed(
                publisher,
                interval=settings.sse_poll_interval,
                gap_timeout=settings.sse_gap_timeout,
            )
    logger.info("feed: %s (%s)", feed.mode, reason)
    return feed
