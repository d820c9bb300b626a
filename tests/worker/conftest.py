"""Worker fixtures: a Redis database of each test's own, worker processes, a fake OpenAI."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from app.settings import Secret, Settings
from support.worker import (
    ARQ_DB,
    FakeOpenAI,
    flush,
    with_db,
)


@pytest.fixture
async def settings(settings: Settings) -> AsyncIterator[Settings]:
    """The suite's settings on a Redis database of this test's own, with quick run knobs."""
    assert settings.redis_url is not None
    url = with_db(settings.redis_url.get(), ARQ_DB)
    await flush(url)
    yield dataclasses.replace(
        settings,
        redis_url=Secret(url),
        job_time_limit=30.0,
        shutdown_grace=5.0,
        log_level="INFO",
    )
    await flush(url)


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server
