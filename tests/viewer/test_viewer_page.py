"""The viewer in headless Chromium against a real API and worker."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from support.browser import screenshot_path
from support.servers import RunningAPI
from support.tcpproxy import TCPProxy
from support.viewer import Viewer, viewer_page

pytestmark = pytest.mark.timeout(120)


async def append(client: httpx.AsyncClient, session: str, *events: dict[str, Any]) -> list[str]:
    response = await client.post(f"/v1/sessions/{session}/events", json={"events": list(events)})
    assert response.status_code == 201, response.text
    return [e["id"] for e in response.json()["events"]]


def delta(message_id: str, text: str) -> dict[str, Any]:
    return {"type": "message.delta", "data": {"message_id": message_id, "delta": text}}


def completed(message_id: str, content: str) -> dict[str, Any]:
    data = {"message_id": message_id, "role": "assistant", "content": content}
    return {"type": "message.completed", "data": data}


def bubble(page: Page, message_id: str) -> Any:
    return page.locator(f'.bubble[data-message-id="{message_id}"]')


async def test_stored_and_live_deltas_are_assembled_into_one_bubble(
    viewer: Viewer, client: httpx.AsyncClient
) -> None:
    await append(client, "chat", delta("m1", "Hel"), delta("m1", "lo, "))
    page = await viewer.open("chat")
    await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    await expect(bubble(page, "m1").locator(".text")).to_have_text("Hello, ")
    await expect(bubble(page, "m1")).to_have_attribute("data-complete", "false")
    await append(client, "chat", delta("m1", "wor"), delta("m1", "ld!"))
    await expect(bubble(page, "m1").locator(".text")).to_have_text("Hello, world!")
    await append(client, "chat", completed("m1", "Hello, world!"))
    await expect(bubble(page, "m1")).to_have_attribute("data-complete", "true")
    await expect(bubble(page, "m1").locator(".count")).to_have_text("4 deltas")
    await expect(page.locator(".bubble")).to_have_count(1)
    await page.screenshot(path=screenshot_path("viewer-deltas"))


async def test_events_of_any_type_are_shown_in_order_with_their_data(
    viewer: Viewer, client: httpx.AsyncClient
) -> None:
    """EventSource only delivers types it listens to: the page learns the others from the
    gaps in the positions when a known event follows them, and from the sessions list's
    `last_event_id` when nothing follows them yet."""
    await append(client, "kinds", {"type": "tool.call", "data": {"name": "search"}})
    await append(client, "kinds", {"type": "custom.first", "data": {"n": 1}})
    page = await viewer.open("kinds")
    rows = page.locator("#events > li")
    # custom.first is last: the sessions list shows the session's newest position past it.
    await expect(rows).to_have_count(2)
    await append(
        client,
        "kinds",
        {"type": "custom.second", "data": {"n": 2}},
        {"type": "status", "data": {"state": "thinking"}},
        {"type": "custom.first", "data": {"n": 3}},
    )
    await expect(rows).to_have_count(5)
    types = await rows.evaluate_all("rows => rows.map(r => r.dataset.type)")
    assert types == ["tool.call", "custom.first", "custom.second", "status", "custom.first"]
    row = rows.nth(2)
    await row.locator("summary").click()
    await expect(row.locator("pre")).to_contain_text('"custom.second"')
    await expect(row.locator("pre")).to_contain_text('"n": 2')
    await expect(page.locator("#events")).to_have_attribute("data-duplicates", "0")


@pytest.mark.usefixtures("worker")
async def test_an_echo_run_started_from_the_page_streams_and_completes(viewer: Viewer) -> None:
    page = await viewer.open("echo-demo")
    await expect(page.locator("#agent option[value=echo]")).to_have_count(1)
    await expect(page.locator("#agent")).to_have_value("echo")
    await expect(page.locator("#agent-description")).to_have_text(
        "stream input.text back in chunks"
    )
    await expect(page.locator("#run-input")).to_have_value(
        '{"text": "Hello from the viewer", "chunk": 3, "delay": 0.05}'
    )
    await page.get_by_role("button", name="Start run").click()
    message = page.locator(".bubble")
    await expect(message.locator(".text")).to_have_text("Hello from the viewer")
    await expect(message).to_have_attribute("data-complete", "true")
    badge = page.locator("#runs li .badge")
    await expect(badge).to_have_text("completed")
    await expect(badge).to_have_attribute("data-status", "completed")
    types = await page.locator("#events > li").evaluate_all("rows => rows.map(r => r.dataset.type)")
    assert types == ["run.queued", "run.started", "message", "run.completed"]
    await page.screenshot(path=screenshot_path("viewer-echo-run"), full_page=True)


@pytest.mark.usefixtures("worker")
async def test_a_slow_run_is_cancelled_from_the_page(viewer: Viewer) -> None:
    page = await viewer.open("slow")
    await expect(page.locator("#agent")).to_have_value("echo")
    await page.locator("#run-input").fill('{"text": "one two three four five", "delay": 1}')
    await page.get_by_role("button", name="Start run").click()
    badge = page.locator("#runs li .badge")
    await expect(badge).to_have_text("running")
    await expect(page.locator(".bubble .text")).not_to_have_text("")
    await page.locator("#runs li").get_by_role("button", name="Cancel").click()
    await expect(badge).to_have_text("cancelled")
    await expect(page.locator("#runs li button")).to_be_hidden()
    # The worker closes the message it was streaming, marked incomplete (issue 12).
    await expect(page.locator(".bubble")).to_have_attribute("data-complete", "incomplete")
    await expect(page.locator(".bubble .state")).to_contain_text("incomplete")
    await page.screenshot(path=screenshot_path("viewer-cancelled"))


@pytest.mark.usefixtures("worker")
async def test_an_invalid_input_is_refused_on_the_page_and_by_the_api(viewer: Viewer) -> None:
    page = await viewer.open("bad-input")
    await expect(page.locator("#agent")).to_have_value("echo")
    await page.locator("#run-input").fill("{not json")
    await page.get_by_role("button", name="Start run").click()
    await expect(page.locator("#run-input-error")).to_contain_text("Not valid")
    await expect(page.locator("#run-input")).to_have_attribute("aria-invalid", "true")
    await page.locator("#run-input").fill('{"text": 5}')
    await page.get_by_role("button", name="Start run").click()
    await expect(page.locator("#alert")).to_contain_text("Could not start the run")
    await expect(page.locator("#alert")).to_contain_text("invalid_input")


async def test_the_page_resumes_after_each_stream_end_without_gaps_or_duplicates(
    browser: Browser, short_stream_api: RunningAPI
) -> None:
    """Streams end every second (SSE_TIMEOUT=1): EventSource comes back with Last-Event-ID."""
    found = await viewer_page(browser, short_stream_api)
    page = await found.open("resume")
    events = page.locator("#events")
    written: list[str] = []
    async with httpx.AsyncClient(base_url=short_stream_api.url) as client:
        for batch in range(4):
            written += await append(
                client,
                "resume",
                *({"type": "tool.call", "data": {"batch": batch, "i": i}} for i in range(25)),
            )
            await expect(events.locator("li[data-type='tool.call']")).to_have_count(len(written))
            connections = int(await events.get_attribute("data-connections") or 0)
            await expect(events).not_to_have_attribute("data-connections", str(connections))
    shown = await events.locator("li[data-type='tool.call']").evaluate_all(
        "rows => rows.map(r => r.dataset.id)"
    )
    assert shown == written
    assert int(await events.get_attribute("data-connections") or 0) >= 4
    await expect(events).to_have_attribute("data-duplicates", "0")
    reconnects = events.locator("li[data-type='stream.reconnect']")
    assert await reconnects.count() >= 3
    await page.screenshot(path=screenshot_path("viewer-resumed"))
    await page.context.close()
    assert found.errors == []


async def test_the_sessions_list_shows_recent_sessions_and_one_opens_by_id_with_the_keyboard(
    viewer: Viewer, client: httpx.AsyncClient
) -> None:
    await append(client, "older", {"type": "status", "data": {"state": "ok"}})
    await append(client, "by-id", {"type": "status", "data": {"state": "ok"}})
    page = viewer.page
    await page.goto(viewer.url + "/")
    await expect(page.locator("nav")).to_have_attribute("data-sessions", "available")
    links = page.locator("#sessions a")
    await expect(links).to_have_count(2)
    names = await links.evaluate_all("links => links.map(a => a.firstChild.textContent)")
    assert names == ["by-id", "older"]  # newest first
    await expect(page.locator("#empty")).to_be_visible()
    await expect(page.locator("#connection")).to_have_text("not connected")
    # Keyboard only: the session id field, then Enter submits the form.
    for _ in ("skip link", "home link", "token disclosure", "session id"):
        await page.keyboard.press("Tab")
    await expect(page.locator("#open-session")).to_be_focused()
    await page.keyboard.type("by-id")
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(f"{viewer.url}/?session=by-id")
    await expect(page.locator("#events > li[data-type=status]")).to_have_count(1)
    await expect(page.locator("#sessions a[aria-current=page]")).to_have_count(1)


async def test_an_idle_page_reads_no_history_until_the_list_shows_an_unseen_event(
    viewer: Viewer, client: httpx.AsyncClient
) -> None:
    """The live path costs the database nothing per page: an open page reads the history
    only when the sessions list (refreshed anyway) shows a position the stream did not
    deliver, i.e. an event of a type it has no listener for."""
    await append(client, "idle", *({"type": "status", "data": {"i": i}} for i in range(3)))
    page = viewer.page
    reads: list[str] = []
    page.on("request", lambda r: reads.append(r.url) if "/events" in r.url else None)
    await viewer.open("idle")
    rows = page.locator("#events > li")
    await expect(rows).to_have_count(3)
    reads.clear()  # (a page slow to receive its replay may read the history once on opening)
    for _ in range(2):  # two refreshes of the list (every 5 s) showing nothing new
        async with page.expect_request(lambda r: "/v1/sessions?" in r.url, timeout=30_000):
            pass
    assert reads == []
    await append(client, "idle", {"type": "custom.late", "data": {"n": 1}})
    await expect(rows).to_have_count(4)
    await expect(rows.nth(3)).to_have_attribute("data-type", "custom.late")
    assert len(reads) == 1, reads
    assert "after=" in reads[0]
    await expect(page.locator("#events")).to_have_attribute("data-duplicates", "0")


async def test_every_control_is_labelled_and_a_phone_gets_one_column(
    browser: Browser, api: RunningAPI, client: httpx.AsyncClient
) -> None:
    await append(client, "phone", delta("m1", "A reply that wraps on a narrow screen. " * 4))
    found = await viewer_page(
        browser, api, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    page = await found.open("phone")
    await expect(page.locator(".bubble .text")).to_contain_text("A reply that wraps")
    unlabelled = await page.evaluate(
        """() => [...document.querySelectorAll("input, select, textarea, button")]
          .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label")
                          && !el.textContent.trim())
          .map((el) => el.id || el.outerHTML)"""
    )
    assert unlabelled == []
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0
    sidebar = await page.locator("nav").bounding_box()
    main = await page.locator("main").bounding_box()
    assert sidebar is not None
    assert main is not None
    assert main["y"] >= sidebar["y"] + sidebar["height"]  # stacked, not side by side
    await page.screenshot(path=screenshot_path("viewer-phone"), full_page=True)
    await page.context.close()
    assert found.errors == []


async def test_a_page_that_was_away_past_retention_says_history_was_lost(
    viewer: Viewer, api: RunningAPI, client: httpx.AsyncClient
) -> None:
    """The page reaches the API through a proxy; while the proxy refuses connections, events
    are written and the oldest expire (deleted, as the TTL index does). Back online, the
    browser resumes with its last id: the server says what was lost and goes on."""
    ids = await append(client, "away", *({"type": "status", "data": {"i": i}} for i in range(3)))
    parts = urlsplit(api.url)
    async with TCPProxy(parts.hostname or "127.0.0.1", parts.port or 80) as proxy:
        page = viewer.page
        await page.goto(f"http://127.0.0.1:{proxy.port}/?session=away")
        rows = page.locator("#events > li[data-type=status]")
        await expect(rows).to_have_count(3)
        proxy.pause()
        await expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
        ids += await append(
            client, "away", *({"type": "status", "data": {"i": i}} for i in (3, 4, 5))
        )
        await api.services.collections.events.delete_many(
            {"session_id": "away", "seq": {"$lte": 4}}
        )
        proxy.resume()
        await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
        await expect(rows).to_have_count(5)
        lost = page.locator("#history-lost")
        await expect(lost).to_be_visible()
        await expect(lost).to_contain_text(f"(expired); the stream goes on from after {ids[3]}")
        shown = await rows.evaluate_all("rows => rows.map(r => r.dataset.id)")
        assert shown == [*ids[:3], *ids[4:]]
        await expect(page.locator("#events > li[data-type='stream.history_lost']")).to_have_count(1)
        await expect(page.locator("#events")).to_have_attribute("data-duplicates", "0")
        await expect(page.locator("#counts")).to_have_text("5 events")
        await page.screenshot(path=screenshot_path("viewer-history-lost"))
