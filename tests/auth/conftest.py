"""Access-control tests run the API with AUTH_MODE=jwt and the test secret."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from app.settings import AuthMode, Secret, Settings
from support.servers import RunningAPI, running_api
from support.tokens import SECRET
from support.worker import ARQ_DB, flush, with_db


@pytest.fixture
async def jwt_settings(settings: Settings) -> AsyncIterator[Settings]:
    """AUTH_MODE=jwt with the test secret, on a Redis database of this test's own."""
    assert settings.redis_url is not None
    url = with_db(settings.redis_url.get(), ARQ_DB)
    await flush(url)
    yield dataclasses.replace(
        settings,
        auth_mode=AuthMode.JWT,
        auth_jwt_secret=Secret(SECRET),
        redis_url=Secret(url),
        sse_heartbeat=1.0,
    )
    await flush(url)


@pytest.fixture
async def jwt_api(jwt_settings: Settings) -> AsyncIterator[RunningAPI]:
    async with running_api(jwt_settings) as running:
        yield running
        await running.services.mongo.drop_database(jwt_settings.mongo_db)
