"""`app serve --workers 2`: two API processes on one port, supervised, drained on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.settings import Settings
from embedded.redis import free_port
from support.sse import Stream
from support.waits import eventually, eventually_async

pytestmark = pytest.mark.timeout(180)

STARTED = re.compile(r"API process (\d) started \(pid (\d+)\)")


class Supervised:
    def __init__(self, process: asyncio.subprocess.Process, log: Path, url: str) -> None:
        self.process = process
        self.log = log
        self.url = url

    def children(self) -> dict[int, int]:
        """Slot -> pid of the newest child the supervisor has started in each slot."""
        return {int(s): int(p) for s, p in STARTED.findall(self.log.read_text())}

    async def pids_serving(self, client: httpx.AsyncClient, want: set[int]) -> bool:
        """Ask /readyz on fresh connections until every pid in `want` has answered."""
        seen: set[int] = set()
        for _ in range(40):
            response = await client.get(
                f"{self.url}/readyz", headers={"connection": "close"}, timeout=10
            )
            if response.status_code == 200:
                seen.add(response.json()["pid"])
            if want <= seen:
                return True
        return False


@pytest.fixture
async def supervised(settings: Settings, tmp_path: Path) -> AsyncIterator[Supervised]:
    assert settings.mongo_url is not None
    assert settings.redis_url is not None
    port = free_port()
    env = dict(os.environ)
    env.update(
        MONGO_URL=settings.mongo_url.get(),
        REDIS_URL=settings.redis_url.get(),
        MONGO_DB=settings.mongo_db,
        PORT=str(port),
        SHUTDOWN_GRACE="5",
        SSE_HEARTBEAT="5",
        WORKER_METRICS_PORT="0",
        LOG_LEVEL="INFO",
        AUTH_MODE="off",
    )
    env.pop("API_WORKERS", None)
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app", "serve", "--workers", "2", env=env, stderr=sink
        )
    running = Supervised(process, log, f"http://127.0.0.1:{port}")
    try:
        yield running
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        for pid in running.children().values():  # a child left behind fails the test run
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_two_processes_serve_one_port_restart_after_a_crash_and_drain_on_sigterm(
    supervised: Supervised,
) -> None:
    async with httpx.AsyncClient() as client:
        await eventually(lambda: len(supervised.children()) == 2, 60, "two children")
        first = supervised.children()
        assert supervised.process.pid not in first.values()

        async def both_serve() -> bool:
            return await supervised.pids_serving(client, set(supervised.children().values()))

        await eventually_async(both_serve, 60, "both children answering /readyz")

        # A child that dies is replaced, and the replacement serves.
        os.kill(first[0], signal.SIGKILL)
        await eventually(lambda: supervised.children()[0] != first[0], 60, "a restart")
        assert f"API process 0 (pid {first[0]}) exited with -9" in supervised.log.read_text()
        assert supervised.children()[1] == first[1]
        await eventually_async(both_serve, 60, "the new child answering /readyz")

        # SIGTERM drains: an open stream ends with stream.reconnect (shutdown), then all exit.
        async with client.stream("GET", f"{supervised.url}/v1/sessions/s/stream") as response:
            stream = Stream(response)
            assert response.status_code == 200
            children = supervised.children()
            supervised.process.send_signal(signal.SIGTERM)
            started = time.monotonic()
            [event] = await stream.take(1, timeout=30)
            assert event.event == "stream.reconnect"
            assert event.data["reason"] == "shutdown"
    async with asyncio.timeout(5 + 5):  # SHUTDOWN_GRACE and a margin
        code = await supervised.process.wait()
    log = supervised.log.read_text()
    assert code == 0, log
    assert time.monotonic() - started < 10
    assert not [pid for pid in children.values() if alive(pid)], log
    assert "SIGTERM: stopping 2 API processes" in log
    assert "every API process has exited [0, 0]" in log
