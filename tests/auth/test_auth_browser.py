"""A real browser (headless Chromium): EventSource with the cookie, and CORS across origins.

The pages on other origins come from a second tiny server at http://127.0.0.1:<another port>:
another origin than the API's, but the same site, as a UI on app.example.com is to an API on
api.example.com.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page

from app.settings import Settings
from support.pages import page_server
from support.servers import RunningAPI, running_api
from support.tokens import bearer, token

pytestmark = pytest.mark.timeout(90)

# Resolves with the data of the first two "n" events, or rejects on the first error.
READ_TWO = """([url, withCredentials]) => new Promise((resolve, reject) => {
    const source = new EventSource(url, {withCredentials});
    const got = [];
    source.addEventListener("n", (e) => {
        got.push(JSON.parse(e.data).data);
        if (got.length === 2) { source.close(); resolve(got); }
    });
    source.onerror = () => { source.close(); reject(new Error("EventSource failed")); };
})"""

FETCH = """async ([url, bearer]) => {
    try {
        const response = await fetch(url, {headers: {Authorization: bearer}});
        return {status: response.status, body: await response.json()};
    } catch (error) {
        return {blocked: String(error)};
    }
}"""


@dataclasses.dataclass
class Origins:
    api: RunningAPI
    allowed: str
    other: str


@pytest.fixture
async def cors_api(jwt_settings: Settings) -> AsyncIterator[Origins]:
    async with page_server() as allowed, page_server() as other:
        settings = dataclasses.replace(jwt_settings, cors_origins=(allowed,))
        async with running_api(settings) as api:
            await _seed(api)
            yield Origins(api, allowed, other)
            await api.services.mongo.drop_database(settings.mongo_db)


async def _seed(api: RunningAPI) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        response = await client.post(
            "/v1/sessions/web/events",
            json={"events": [{"type": "n", "data": {"i": 1}}, {"type": "n", "data": {"i": 2}}]},
            headers=bearer(token(scope="events:write", sessions=["web"])),
        )
        assert response.status_code == 201, response.text


async def context_with_cookie(browser: Browser, api: RunningAPI) -> BrowserContext:
    context = await browser.new_context()
    await context.add_cookies(
        [
            {
                "name": "agentstream_token",
                "value": token("browser", scope="events:read", sessions=["web"]),
                "url": api.url,
                "httpOnly": True,
                "sameSite": "Lax",
            }
        ]
    )
    return context


async def page_at(context: BrowserContext, origin: str) -> Page:
    page = await context.new_page()
    await page.goto(f"{origin}/")
    return page


async def test_an_event_source_with_the_cookie_receives_events(
    browser: Browser, cors_api: Origins
) -> None:
    context = await context_with_cookie(browser, cors_api.api)
    try:
        page = await context.new_page()
        await page.goto(f"{cors_api.api.url}/healthz")  # a page of the API's own origin
        got: Any = await page.evaluate(READ_TWO, ["/v1/sessions/web/stream", False])
        assert got == [{"i": 1}, {"i": 2}]
        # The page's script cannot read the HttpOnly cookie.
        assert await page.evaluate("document.cookie") == ""
    finally:
        await context.close()


async def test_an_allowed_origin_streams_with_credentials_and_others_are_blocked(
    browser: Browser, cors_api: Origins
) -> None:
    stream = f"{cors_api.api.url}/v1/sessions/web/stream"
    history = f"{cors_api.api.url}/v1/sessions/web/events"
    reader = f"Bearer {token(scope='events:read', sessions=['web'])}"
    context = await context_with_cookie(browser, cors_api.api)
    try:
        allowed = await page_at(context, cors_api.allowed)
        got: Any = await allowed.evaluate(READ_TWO, [stream, True])
        assert got == [{"i": 1}, {"i": 2}]
        fetched: Any = await allowed.evaluate(FETCH, [history, reader])
        assert fetched["status"] == 200
        assert [e["data"] for e in fetched["body"]["events"]] == [{"i": 1}, {"i": 2}]

        other = await page_at(context, cors_api.other)
        blocked: Any = await other.evaluate(FETCH, [history, reader])
        assert "blocked" in blocked, blocked
        with pytest.raises(Exception, match="EventSource failed"):
            await other.evaluate(READ_TWO, [stream, True])
    finally:
        await context.close()


async def test_preflight_grants_credentials_to_listed_origins_only(cors_api: Origins) -> None:
    allowed, other = cors_api.allowed, cors_api.other
    async with httpx.AsyncClient(base_url=cors_api.api.url) as client:
        asks = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        }
        granted = await client.options(
            "/v1/sessions/web/events", headers={"Origin": allowed, **asks}
        )
        assert granted.status_code == 200
        assert granted.headers["access-control-allow-origin"] == allowed
        assert granted.headers["access-control-allow-credentials"] == "true"
        assert "authorization" in granted.headers["access-control-allow-headers"].lower()
        refused = await client.options("/v1/sessions/web/events", headers={"Origin": other, **asks})
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers
        simple = await client.get("/v1/sessions/web/events", headers={"Origin": allowed})
        assert simple.status_code == 401  # CORS is not access: a token is still required
        assert simple.headers["access-control-allow-origin"] == allowed
        assert simple.headers["access-control-allow-origin"] != "*"


# Collects every "n" event and every stream.reconnect; EventSource reconnects by itself.
WATCH = """(url) => {
    window.got = []; window.reconnects = []; window.failed = false;
    const source = new EventSource(url);
    source.addEventListener("n", (e) => window.got.push(JSON.parse(e.data).data.i));
    source.addEventListener("stream.reconnect", (e) => window.reconnects.push(JSON.parse(e.data)));
    source.onerror = () => { if (source.readyState === EventSource.CLOSED) window.failed = true; };
}"""


async def test_the_browser_resumes_exactly_after_its_token_expires(
    browser: Browser, cors_api: Origins
) -> None:
    api = cors_api.api
    short = token("browser", scope="events:read", sessions=["web"], ttl=6)  # slack under load
    context = await browser.new_context()
    cookie = {"name": "agentstream_token", "url": api.url, "httpOnly": True, "sameSite": "Lax"}
    try:
        await context.add_cookies([{**cookie, "value": short}])
        page = await context.new_page()
        await page.goto(f"{api.url}/healthz")
        await page.evaluate(WATCH, "/v1/sessions/web/stream")
        await page.wait_for_function("window.got.length === 2", timeout=15_000)
        # The backend refreshes the cookie; the open stream still ends at the first token's exp.
        fresh = token("browser", scope="events:read", sessions=["web"], ttl=300)
        await context.add_cookies([{**cookie, "value": fresh}])
        await page.wait_for_function("window.reconnects.length === 1", timeout=15_000)
        reconnect: Any = await page.evaluate("window.reconnects[0]")
        assert reconnect["reason"] == "token_expired"
        async with httpx.AsyncClient(base_url=api.url) as client:
            response = await client.post(
                "/v1/sessions/web/events",
                json={"events": [{"type": "n", "data": {"i": 3}}, {"type": "n", "data": {"i": 4}}]},
                headers=bearer(token(scope="events:write", sessions=["web"])),
            )
            assert response.status_code == 201, response.text
        await page.wait_for_function("window.got.length >= 4", timeout=15_000)
        assert await page.evaluate("window.got") == [1, 2, 3, 4]
        assert await page.evaluate("window.failed") is False
    finally:
        await context.close()
