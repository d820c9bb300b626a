"""The change-stream feed's failure count: consecutive failures of one outage, not all time."""

from __future__ import annotations

import dataclasses
import logging
import re

import pytest

from app.settings import FeedMode, Secret, Settings
from support.servers import RunningAPI, running_api
from support.tcpproxy import TCPProxy
from support.waits import eventually

pytestmark = pytest.mark.timeout(120)


def in_a_row(caplog: pytest.LogCaptureFixture) -> list[int]:
    found = []
    for record in caplog.records:
        match = re.match(r"change stream failed \((\d+) in a row\)", record.getMessage())
        if match:
            found.append(int(match.group(1)))
    return found


async def test_each_outage_counts_its_failures_from_one(
    settings: Settings, api: RunningAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="app.feeds.change_stream")
    assert settings.mongo_url is not None
    url = settings.mongo_url.get()
    async with TCPProxy.for_url(url) as proxy:
        behind = dataclasses.replace(
            settings,
            mongo_url=Secret(proxy.url_through(url)),
            mongo_db=api.services.settings.mongo_db,
            sse_feed=FeedMode.CHANGE_STREAM,
        )
        async with running_api(behind) as streaming:
            feed = streaming.services.feed
            for outage in range(2):
                await eventually(lambda: feed.running, timeout=60, what="the feed open")
                before = len(in_a_row(caplog))
                proxy.pause()
                await eventually(
                    lambda before=before: len(in_a_row(caplog)) >= before + 2,  # type: ignore[misc]
                    timeout=60,
                    what="two failures in this outage",
                )
                counts = in_a_row(caplog)[before:]
                assert counts[:2] == [1, 2], (outage, counts)
                proxy.resume()
            await eventually(lambda: feed.running, timeout=60, what="the feed back")
