"""Viewer fixtures: a Redis database of each test's own, the API (also with access control on)
and a worker, and a Chromium page on the viewer that fails the test on any script or CSP
error."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import httpx
import pytest
from playwright.async_api import Browser, expect

from app.settings import Secret, Settings
from support.servers import RunningAPI
from support.viewer import Viewer, viewer_page
from support.worker import ARQ_DB, flush, running_worker, with_db


@pytest.fixture
async def settings(settings: Settings) -> AsyncIterator[Settings]:
    """The suite's settings on a Redis database of this test's own, with a quick retry hint."""
    assert settings.redis_url is not None
    url = with_db(settings.redis_url.get(), ARQ_DB)
    await flush(url)
    yield dataclasses.replace(settings, redis_url=Secret(url), sse_retry_ms=200)
    await flush(url)


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[None]:
    async with running_worker(settings):
        yield


@pytest.fixture
async def client(api: RunningAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as found:
        yield found


@pytest.fixture(autouse=True)
def patient_expect() -> None:
    """Page assertions wait up to 20 s (the machine is shared), not Playwright's 5 s."""
    expect.set_options(timeout=20_000)


@pytest.fixture
async def viewer(browser: Browser, api: RunningAPI) -> AsyncIterator[Viewer]:
    found = await viewer_page(browser, api, viewport={"width": 1280, "height": 900})
    yield found
    await found.page.context.close()
    assert found.errors == [], found.errors
