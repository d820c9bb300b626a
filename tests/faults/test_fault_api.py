"""The API process is SIGKILLed and started again while clients stream and a writer writes:
clients reconnect with their last id and miss nothing; nothing arrives twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from app.mongo import Collections
from app.settings import Settings
from support.faults import (
    APIProcess,
    Writer,
    api_env,
    assert_nothing_lost_or_doubled,
    following,
)
from support.waits import eventually

pytestmark = pytest.mark.timeout(120)

RSS_BOUND = 400 * 1024 * 1024


async def test_clients_resume_across_an_api_process_killed_and_restarted(
    settings: Settings, collections: Collections, tmp_path: Path
) -> None:
    api = APIProcess(api_env(settings), tmp_path / "api.log")
    api.start()
    try:
        await api.ready()
        async with (
            httpx.AsyncClient(base_url=api.url) as client,
            following(api.url, "phoenix", 10) as followers,
        ):
            writers = [Writer(client, "phoenix", f"w{n}") for n in range(2)]
            for writer in writers:
                await writer.write(5)
            await eventually(lambda: all(len(f.ids) >= 10 for f in followers), 30, "delivery")

            api.kill()
            failed = [w.failures for w in writers]
            # Refused while the API is down: each writer retries with the same event_ids.
            pending = asyncio.gather(*(w.write(5) for w in writers))
            await eventually(
                lambda: all(w.failures > n for w, n in zip(writers, failed, strict=True)),
                30,
                "every writer to be refused",
            )
            api.start()
            await asyncio.wait_for(pending, 60)
            await api.ready()
            await asyncio.gather(*(w.write(5) for w in writers))
            assert api.starts == 2
            await assert_nothing_lost_or_doubled(collections, "phoenix", writers, followers)
            assert all(f.connects >= 2 for f in followers)  # each reconnected by itself
            assert api.rss_bytes() < RSS_BOUND
    finally:
        await api.stop()
    assert not api.stop_timed_out
