"""The viewer with access control, against a stand-in that answers as the contract says.

This branch has no access control yet, so a small server of the test's own serves the real
viewer files and answers the API calls the page makes: 401 `unauthorized` without a valid
token, 403 `forbidden` for a token that does not cover the session. It records how each
request carried its token.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, expect
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from app import viewer
from support.browser import screenshot_path
from support.servers import serving

pytestmark = pytest.mark.timeout(90)

TOKENS = {"good": True, "narrow": False}  # token -> covers the session
EVENT = (
    b"retry: 60000\n\n"
    b'id: 1.0000abcd\nevent: tool.call\ndata: {"id":"1.0000abcd","event_id":"e1",'
    b'"session_id":"private","type":"tool.call","data":{"name":"search"},"trace_id":null,'
    b'"timestamp":"2026-11-30T04:16:23.644Z"}\n\n'
)


@dataclasses.dataclass
class Seen:
    path: str
    authorization: str | None
    access_token: str | None


def stand_in(seen: list[Seen]) -> Starlette:
    async def answer(request: Request) -> Response:
        header = request.headers.get("authorization")
        query = request.query_params.get("access_token")
        seen.append(Seen(request.url.path, header, query))
        token = header.removeprefix("Bearer ") if header else query
        if token not in TOKENS:
            error = {"code": "unauthorized", "message": "a valid bearer token is required"}
            headers = {"WWW-Authenticate": "Bearer"}
            return JSONResponse({"error": error}, status_code=401, headers=headers)
        if not TOKENS[token]:
            error = {"code": "forbidden", "message": "the token does not cover this session"}
            return JSONResponse({"error": error}, status_code=403)
        path = request.url.path
        if path == "/v1/agents":
            return JSONResponse({"agents": [{"name": "echo", "description": "echo it"}]})
        if path == "/v1/sessions":
            session = {
                "session_id": "private",
                "updated_at": "2026-11-30T04:16:23.644Z",
                "last_event_id": "1.0000abcd",
            }
            return JSONResponse({"sessions": [session], "next": None})
        if path.endswith("/stream"):

            async def frames() -> AsyncIterator[bytes]:
                yield EVENT
                await asyncio.Event().wait()  # open until the page goes away

            return StreamingResponse(frames(), media_type="text/event-stream")
        return JSONResponse({"events": [], "next": None})

    return Starlette(routes=[*viewer.routes, Route("/v1/{path:path}", answer)])


async def test_the_token_is_asked_for_kept_in_the_tab_and_sent_as_the_contract_says(
    browser: Browser,
) -> None:
    seen: list[Seen] = []
    async with serving(stand_in(seen)) as url:
        context = await browser.new_context()
        page = await context.new_page()
        page.set_default_timeout(20_000)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(f"{url}/?session=private")
        alert = page.locator("#alert")
        await expect(alert).to_contain_text("not signed in (401 unauthorized)")
        await expect(alert).to_contain_text("Enter a valid access token")
        await expect(page.locator("#connection")).to_have_attribute("data-state", "error")
        await expect(page.locator("#token")).to_be_focused()
        await expect(page.locator("#sessions-note")).to_contain_text("401")

        await page.locator("#token").fill("narrow")
        await page.get_by_role("button", name="Use token").click()
        await expect(alert).to_contain_text("not allowed to do that (403 forbidden)")
        await expect(alert).to_contain_text("does not cover this session")

        await page.locator("#token").fill("good")
        await page.keyboard.press("Enter")
        await expect(page.locator("#events > li[data-type='tool.call']")).to_have_count(1)
        await expect(page.locator("#connection")).to_have_attribute("data-state", "live")
        await expect(alert).to_be_hidden()
        await expect(page.locator("#sessions a[aria-current=page]")).to_have_text(
            "privateupdated " + await page.locator("#sessions time").inner_text()
        )
        await expect(page.locator("#agent")).to_have_value("echo")
        stored = await page.evaluate("sessionStorage.getItem('agentstream_token')")
        assert stored == "good"
        await page.screenshot(path=screenshot_path("viewer-auth"))
        await context.close()
    streams = [s for s in seen if s.path.endswith("/stream")]
    calls = [s for s in seen if not s.path.endswith("/stream")]
    # EventSource cannot send headers: the stream gets the token as ?access_token=.
    assert [s.access_token for s in streams][-1] == "good"
    assert all(s.authorization is None for s in streams)
    # JSON calls carry it as a bearer token, never in the URL.
    assert {s.authorization for s in calls} >= {"Bearer good", "Bearer narrow", None}
    assert all(s.access_token is None for s in calls)
    assert {s.path for s in calls if s.authorization == "Bearer good"} >= {
        "/v1/agents",
        "/v1/sessions",
    }
    assert errors == []
