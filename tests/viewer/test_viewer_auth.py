"""The viewer with access control on (AUTH_MODE=jwt): a real API, a worker and Chromium.

A person types tokens into the page's token field: none, a badly signed one (401), one that
does not cover the session (403), then one for `team-a*`. The page says what is wrong at each
step, and with the good token it lists only the covered sessions, streams the session's stored
and live deltas, and starts an echo run. Every request is recorded to check how it carried the
token: a bearer header on JSON calls, `access_token` on the stream (EventSource sends no headers).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, Request, expect

from support.browser import screenshot_path
from support.servers import RunningAPI
from support.tokens import bearer, token
from support.viewer import viewer_page

pytestmark = [pytest.mark.timeout(150), pytest.mark.usefixtures("worker")]


@dataclasses.dataclass(frozen=True)
class Tokens:
    """Minted when the test starts (a module-level token could expire during a long run)."""

    admin: str = dataclasses.field(default_factory=lambda: token(sub="admin", scope="admin"))
    good: str = dataclasses.field(default_factory=lambda: token(sub="alice", sessions=["team-a*"]))
    narrow: str = dataclasses.field(default_factory=lambda: token(sub="bob", sessions=["other"]))
    badly_signed: str = dataclasses.field(
        default_factory=lambda: token(sub="mallory", key="not-the-server-secret-but-32-bytes-long")
    )


@dataclasses.dataclass
class Seen:
    path: str
    query: str
    authorization: str | None


def delta(text: str) -> dict[str, Any]:
    return {"type": "message.delta", "data": {"message_id": "m1", "delta": text}}


async def append(client: httpx.AsyncClient, session: str, *events: dict[str, Any]) -> None:
    response = await client.post(f"/v1/sessions/{session}/events", json={"events": list(events)})
    assert response.status_code == 201, response.text


async def use_token(page: Page, value: str) -> None:
    """Type a token into the field and submit it, as a person would."""
    await page.locator("#token").fill(value)
    await page.get_by_role("button", name="Use token").click()


async def sessions_listed(page: Page) -> list[str]:
    found: list[str] = await page.locator("#sessions a").evaluate_all(
        "links => links.map(a => a.firstChild.textContent)"
    )
    return found


async def test_the_viewer_with_tokens_typed_in_against_the_real_access_control(
    browser: Browser, jwt_api: RunningAPI
) -> None:
    tokens = Tokens()
    admin = bearer(tokens.admin)
    async with httpx.AsyncClient(base_url=jwt_api.url, timeout=10, headers=admin) as client:
        await append(client, "other", {"type": "status", "data": {"state": "secret"}})
        await append(client, "team-a-notes", {"type": "status", "data": {"state": "ok"}})
        await append(client, "team-a-chat", delta("Hel"), delta("lo, "))

        viewer = await viewer_page(browser, jwt_api, viewport={"width": 1280, "height": 900})
        page = viewer.page
        seen: list[Seen] = []

        def record(request: Request) -> None:
            path, _, query = request.url.removeprefix(jwt_api.url).partition("?")
            if path.startswith("/v1/"):
                seen.append(Seen(path, query, request.headers.get("authorization")))

        page.on("request", record)
        alert = page.locator("#alert")
        state = page.locator("#connection")

        # No token: the stream and the list are refused, and the page asks for a token.
        await page.goto(f"{jwt_api.url}/?session=team-a-chat")
        await expect(alert).to_contain_text("not signed in (401 unauthorized)")
        await expect(alert).to_contain_text("Enter a valid access token")
        await expect(state).to_have_attribute("data-state", "error")
        await expect(page.locator("#token")).to_be_focused()
        await expect(page.locator("#sessions-note")).to_contain_text("401")

        # A token the server did not sign: 401 again, saying why.
        await use_token(page, tokens.badly_signed)
        await expect(alert).to_contain_text("the token's signature is invalid")
        await expect(alert).to_contain_text("401 unauthorized")
        await expect(state).to_have_attribute("data-state", "error")

        # A valid token without this session: 403, and the list holds only its own session.
        await use_token(page, tokens.narrow)
        await expect(alert).to_contain_text("not allowed to do that (403 forbidden)")
        await expect(alert).to_contain_text("does not cover session team-a-chat")
        await expect(page.locator("#sessions a")).to_have_count(1)
        assert await sessions_listed(page) == ["other"]

        # The token for team-a*: the covered sessions only, stored then live deltas.
        await use_token(page, tokens.good)
        await expect(state).to_have_attribute("data-state", "live")
        await expect(alert).to_be_hidden()
        bubble = page.locator('.bubble[data-message-id="m1"]')
        await expect(bubble.locator(".text")).to_have_text("Hello, ")
        await expect(page.locator("#sessions a")).to_have_count(2)
        assert await sessions_listed(page) == ["team-a-chat", "team-a-notes"]
        await expect(page.locator("#sessions a[aria-current=page]")).to_have_count(1)
        await append(client, "team-a-chat", delta("wor"), delta("ld!"))
        await expect(bubble.locator(".text")).to_have_text("Hello, world!")

    # An echo run started from the page, under the same token.
    await expect(page.locator("#agent")).to_have_value("echo")
    await page.get_by_role("button", name="Start run").click()
    badge = page.locator("#runs li .badge")
    await expect(badge).to_have_text("completed")
    await expect(page.locator(".bubble").last.locator(".text")).to_have_text(
        "Hello from the viewer"
    )
    await expect(page.locator("#events")).to_have_attribute("data-duplicates", "0")
    assert await page.evaluate("sessionStorage.getItem('agentstream_token')") == tokens.good
    await page.screenshot(path=screenshot_path("viewer-auth"), full_page=True)
    await page.context.close()
    assert viewer.errors == []

    streams = [s for s in seen if s.path.endswith("/stream")]
    calls = [s for s in seen if not s.path.endswith("/stream")]
    # EventSource cannot send headers: the stream gets the token as ?access_token=.
    assert all(s.authorization is None for s in streams)
    assert f"access_token={tokens.good}" in streams[-1].query
    assert any(f"access_token={tokens.narrow}" in s.query for s in streams)
    # JSON calls carry it as a bearer token, never in the URL.
    assert all("access_token" not in s.query for s in calls)
    assert {s.authorization for s in calls} >= {
        None,
        f"Bearer {tokens.badly_signed}",
        f"Bearer {tokens.narrow}",
        f"Bearer {tokens.good}",
    }
    assert {s.path for s in calls if s.authorization == f"Bearer {tokens.good}"} >= {
        "/v1/sessions",
        "/v1/agents",
        "/v1/sessions/team-a-chat/runs",
    }
