"""A Chromium page on the viewer that records every script error and CSP violation."""

from __future__ import annotations

import dataclasses

from playwright.async_api import Browser, ConsoleMessage, Error, Page

from support.servers import RunningAPI


@dataclasses.dataclass
class Viewer:
    page: Page
    url: str
    errors: list[str]

    async def open(self, session: str) -> Page:
        await self.page.goto(f"{self.url}/?session={session}")
        return self.page


async def viewer_page(browser: Browser, api: RunningAPI, **options: object) -> Viewer:
    context = await browser.new_context(**options)  # type: ignore[arg-type]
    page = await context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []

    def console(message: ConsoleMessage) -> None:
        # A refused stream (expected in some tests) logs a network error; scripts and the
        # content security policy must not log anything.
        if message.type == "error" and "Failed to load resource" not in message.text:
            errors.append(message.text)

    def crashed(error: Error) -> None:
        errors.append(f"{error.name}: {error.message}")

    page.on("console", console)
    page.on("pageerror", crashed)
    return Viewer(page, api.url, errors)
