"""Headless Chromium for browser tests: Debian's `chromium` driven by Playwright.

Playwright cannot download a browser here, so it drives the system's binary through
`executable_path`. Where no Chromium is installed the tests that use `browser` skip, naming why
(`.ci/run` installs it when it runs as root). Screenshots go to `artifacts/` (git-ignored).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"

# The flags a sandboxed, offline machine needs: no sandbox as root, no GPU, and no background
# connections to hosts that this closed network refuses.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromium_path() -> str | None:
    for name in (os.environ.get("CHROMIUM", ""), "chromium", "chromium-browser"):
        if name and (found := shutil.which(name)):
            return found
    return None


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium installed (apt-get install -y chromium, as root; .ci/run does it)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=path, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


def screenshot_path(name: str) -> Path:
    """Where a test saves a screenshot: artifacts/NAME.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / f"{name}.png"
