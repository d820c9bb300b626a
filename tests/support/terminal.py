"""`app tail` and `app run` as real processes, without any server setting in their environment."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
from collections.abc import AsyncIterator

from support.worker import ROOT


def client_env(**extra: str) -> dict[str, str]:
    """This environment without MONGO_*, REDIS_* or AGENTSTREAM_*: the commands need none."""
    prefixes = ("MONGO", "REDIS", "AGENTSTREAM", "NO_COLOR")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", **extra)
    return env


@dataclasses.dataclass
class Command:
    process: asyncio.subprocess.Process

    async def line(self, timeout: float = 30.0) -> str:
        assert self.process.stdout is not None
        found = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not found:
            raise AssertionError(f"the command ended: {await self.stderr()}")
        return found.decode()

    async def lines(self, count: int, timeout: float = 30.0) -> list[str]:
        return [await self.line(timeout) for _ in range(count)]

    async def stderr_line(self, timeout: float = 30.0) -> str:
        assert self.process.stderr is not None
        return (await asyncio.wait_for(self.process.stderr.readline(), timeout)).decode()

    async def stderr(self) -> str:
        assert self.process.stderr is not None
        return (await asyncio.wait_for(self.process.stderr.read(), 30)).decode()

    async def stdout(self) -> str:
        assert self.process.stdout is not None
        return (await asyncio.wait_for(self.process.stdout.read(), 30)).decode()

    async def interrupt(self) -> int:
        """Ctrl-C, then the exit status."""
        self.process.send_signal(signal.SIGINT)
        return await asyncio.wait_for(self.process.wait(), 30)

    async def wait(self, timeout: float = 60.0) -> int:
        return await asyncio.wait_for(self.process.wait(), timeout)


@contextlib.asynccontextmanager
async def app_command(*args: str, **env: str) -> AsyncIterator[Command]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=client_env(**env),
    )
    try:
        yield Command(process)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
