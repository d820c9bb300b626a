"""Fault-suite fixtures: a Redis database of each test's own and worker processes."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from app.settings import Secret, Settings
from support.worker import WorkerProcess, flush, spawn_worker_process, with_db

FAULTS_DB = 13  # the Redis database these tests own: flushed before and after each test


@pytest.fixture
async def settings(settings: Settings) -> AsyncIterator[Settings]:
    assert settings.redis_url is not None
    url = with_db(settings.redis_url.get(), FAULTS_DB)
    await flush(url)
    yield dataclasses.replace(settings, redis_url=Secret(url), log_level="INFO")
    await flush(url)


@pytest.fixture
def spawn_worker(settings: Settings, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start `python -m worker` processes; every one still running at the end is killed."""
    started: list[WorkerProcess] = []

    def spawn(*args: str, **env: str) -> WorkerProcess:
        found = spawn_worker_process(
            settings, tmp_path / f"worker-{len(started)}.log", *args, **env
        )
        started.append(found)
        return found

    yield spawn
    for item in started:
        if item.process.poll() is None:
            item.process.kill()
            item.process.wait(10)
