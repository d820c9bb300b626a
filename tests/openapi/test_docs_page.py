"""/docs: the document rendered for people, from this origin only."""

from __future__ import annotations

import httpx
from playwright.async_api import Browser

from support.browser import screenshot_path
from support.servers import RunningAPI


async def test_the_docs_page_renders_every_operation_from_this_origin(
    api: RunningAPI, browser: Browser
) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        document = (await client.get("/openapi.json")).json()
        page_response = await client.get("/docs")
    assert page_response.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page_response.headers["content-security-policy"]
    count = sum(len(item) for item in document["paths"].values())

    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(f"{api.url}/docs#op-appendEvents")
    await page.wait_for_selector(f"body[data-rendered='{count}']", timeout=15_000)
    assert errors == []
    assert all(url.startswith(api.url) for url in requests), requests
    # The linked operation is open, with its body schema, error codes and link to getEvent.
    opened = page.locator("details#op-appendEvents")
    assert await opened.get_attribute("open") is not None
    text = await opened.inner_text()
    for expected in ("events:write", "NewEventBatch", "reserved_type", "413", "getEvent"):
        assert expected in text, expected
    stream = page.locator("details#op-streamEvents")
    await stream.locator("summary").click()
    text = await stream.inner_text()
    for expected in ("text/event-stream", "stream.reconnect", "agentstream_token", "access_token"):
        assert expected in text, expected
    await page.screenshot(path=screenshot_path("docs-page"), full_page=False)


async def test_unknown_docs_files_are_a_json_404(api: RunningAPI) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        found = await client.get("/docs/docs.js")
        missing = await client.get("/docs/nope.js")
    assert found.headers["content-type"].startswith("text/javascript")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
