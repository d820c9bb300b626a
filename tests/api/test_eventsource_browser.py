"""A real browser's EventSource against a real uvicorn: it reconnects by itself, forever."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import httpx
import pytest
from playwright.async_api import Browser

from app.settings import Settings
from support.browser import screenshot_path
from support.servers import RunningAPI, running_api

pytestmark = pytest.mark.timeout(120)

FORCED_ENDS = 4
WAIT_MS = 30_000


@pytest.fixture
async def short_api(settings: Settings) -> AsyncIterator[RunningAPI]:
    """Streams end after 1 s (SSE_TIMEOUT); browsers come back after 50 ms (SSE_RETRY_MS)."""
    quick = dataclasses.replace(settings, sse_timeout=1.0, sse_retry_ms=50)
    async with running_api(quick) as running:
        yield running
        await running.services.mongo.drop_database(quick.mongo_db)


async def test_an_eventsource_opened_with_since_timestamp_survives_its_reconnects(
    short_api: RunningAPI, browser: Browser
) -> None:
    async with httpx.AsyncClient(base_url=short_api.url) as client:

        async def post(i: int) -> dict[str, str]:
            body = {"type": "note", "data": {"i": i}}
            response = await client.post("/v1/sessions/web/events", json=body)
            assert response.status_code == 201, response.text
            written: dict[str, str] = response.json()["events"][0]
            return written

        before = [await post(i) for i in range(3)]
        since = before[-1]["timestamp"]
        page = await browser.new_page()
        await page.goto(f"{short_api.url}/healthz")  # same origin as the stream
        await page.evaluate(
            """(url) => {
                window.got = []; window.ends = 0; window.failures = 0;
                const source = new EventSource(url);
                window.source = source;
                source.addEventListener("note", (e) => window.got.push(e.lastEventId));
                source.addEventListener("stream.reconnect", () => { window.ends += 1; });
                source.onerror = () => { if (source.readyState === 2) window.failures += 1; };
            }""",
            f"/v1/sessions/web/stream?since_timestamp={since}",
        )
        written = list(before)
        for round_ in range(FORCED_ENDS):
            # Each round: one event while connected, then the server ends the stream and the
            # browser reconnects with Last-Event-ID (and the same since_timestamp URL).
            written.append(await post(100 + round_))
            await page.wait_for_function(
                "(n) => window.got.length >= n",
                arg=sum(1 for w in written if w["timestamp"] >= since),
                timeout=WAIT_MS,
            )
            await page.wait_for_function("(n) => window.ends >= n", arg=round_ + 1, timeout=WAIT_MS)
        written.append(await post(999))
        expected = [w["id"] for w in written if w["timestamp"] >= since]
        await page.wait_for_function(
            "(n) => window.got.length >= n", arg=len(expected), timeout=WAIT_MS
        )
        got = await page.evaluate("window.got")
        state = await page.evaluate("[window.source.readyState, window.failures, window.ends]")
        await page.screenshot(path=screenshot_path("eventsource_since_timestamp"))
    assert got == expected  # every event at or after since_timestamp, once, in order
    assert state[0] != 2, state  # never closed for good
    assert state[1] == 0, state
    assert state[2] >= FORCED_ENDS
