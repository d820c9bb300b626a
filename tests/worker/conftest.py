"""Worker fixtures: a Redis database of each test's own, worker processes, a fake OpenAI."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from app.settings import Secret, Settings
from support.worker import (
    ARQ_DB,
    FakeOpenAI,
    WorkerProcess,
    flush,
    spawn_worker_process,
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


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server
