"""Fault-suite fixtures: a Redis database of each test's own and worker processes."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from app.settings import Secret, Settings
from support.worker import flush, with_db

FAULTS_DB = 13  # the Redis database these tests own: flushed before and after each test


@pytest.fixture
async def settings(settings: Settings) -> AsyncIterator[Settings]:
    assert settings.redis_url is not None
    url = with_db(settings.redis_url.get(), FAULTS_DB)
    await flush(url)
    yield dataclasses.replace(settings, redis_url=Secret(url), log_level="INFO")
    await flush(url)
