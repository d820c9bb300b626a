"""Client and terminal fixtures: the API with a Redis database of each test's own and a test
agent that fails, a worker, an API whose streams end every second, and a TCP proxy in front
of the API that a test can cut to drop every stream."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import pytest

from app.settings import Secret, Settings
from support.servers import RunningAPI
from support.tcpproxy import TCPProxy
from support.worker import ARQ_DB, flush, running_worker, with_db


@pytest.fixture
async def settings(settings: Settings) -> AsyncIterator[Settings]:
    assert settings.redis_url is not None
    url = with_db(settings.redis_url.get(), ARQ_DB)
    await flush(url)
    yield dataclasses.replace(
        settings,
        redis_url=Secret(url),
        sse_retry_ms=200,
        agents=("boom=support.agents:boom",),
        job_time_limit=30.0,
    )
    await flush(url)


@pytest.fixture(autouse=True)
def keep_client_logging() -> Iterator[None]:
    """The commands configure the client's logger, as entry points do; restore it."""
    logger = logging.getLogger("agentstream_client")
    handlers, level, propagate = logger.handlers[:], logger.level, logger.propagate
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)
    logger.propagate = propagate


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[None]:
    async with running_worker(settings):
        yield


@pytest.fixture
async def proxy(api: RunningAPI) -> AsyncIterator[TCPProxy]:
    """A TCP proxy to the API: `proxy.cut()` drops every open connection."""
    parts = urlsplit(api.url)
    async with TCPProxy(parts.hostname or "127.0.0.1", parts.port or 80) as found:
        yield found


@pytest.fixture
def proxy_url(proxy: TCPProxy) -> str:
    """The API's URL through the proxy."""
    return f"http://127.0.0.1:{proxy.port}"
