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
from support.jwt_api import with_jwt
from support.servers import RunningAPI, running_api
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


@pytest.fixture
async def short_stream_api(settings: Settings) -> AsyncIterator[RunningAPI]:
    """An API whose streams end after one second, with a 100 ms retry hint."""
    short = dataclasses.replace(settings, sse_timeout=1.0, sse_retry_ms=100, sse_heartbeat=0.3)
    async with running_api(short) as running:
        yield running
        await running.services.mongo.drop_database(short.mongo_db)


@pytest.fixture
async def jwt_api(settings: Settings) -> AsyncIterator[RunningAPI]:
    """The API with access control on (AUTH_MODE=jwt, the test secret)."""
    secured = with_jwt(settings)
    async with running_api(secured) as running:
        yield running
        await running.services.mongo.drop_database(secured.mongo_db)
