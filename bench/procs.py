"""Child processes of a benchmark run, their CPU and memory, and the open-file limit.

Every server and client runs as its own process, started with `python -m bench.<module>`.
A child speaks JSON lines on stdout (a server's first line is `{"port": ...}`); its stderr goes
straight to the terminal, so progress lines show while it runs. Children die with this process
(PR_SET_PDEATHSIG), and `stop` ends only the child it was given.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import logging
import os
import resource
import signal
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import psutil

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
_PR_SET_PDEATHSIG = 1


def raise_nofile() -> tuple[int, int]:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; return (soft, hard) after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclasses.dataclass
class Child:
    """A running child process and the JSON lines it has printed."""

    name: str
    process: asyncio.subprocess.Process
    lines: asyncio.Queue[dict[str, Any]]
    reader: asyncio.Task[None]

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, line: str) -> None:
        """Write one line to the child's stdin (spawned with `stdin=True`)."""
        if self.process.stdin is not None and self.process.returncode is None:
            self.process.stdin.write(line.encode() + b"\n")

    async def expect(self, key: str, timeout: float) -> dict[str, Any]:
        """The next line that has `key`; earlier lines are skipped. Raise if the child ends."""
        async with asyncio.timeout(timeout):
            while True:
                line = await self.lines.get()
                if "__eof__" in line:
                    raise ChildFailed(f"{self.name} exited ({self.process.returncode})")
                if key in line:
                    return line

    async def wait(self, timeout: float) -> int:
        async with asyncio.timeout(timeout):
            return await self.process.wait()


class ChildFailed(RuntimeError):
    pass


async def _read_lines(name: str, stream: asyncio.StreamReader, out: asyncio.Queue[Any]) -> None:
    while True:
        raw = await stream.readline()
        if not raw:
            break
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            logger.debug("%s: %s", name, raw.decode(errors="replace").rstrip())
            continue
        if isinstance(line, dict):
            await out.put(line)
    await out.put({"__eof__": True})


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env.setdefault("LOG_LEVEL", "WARNING")
    env.setdefault("AUTH_MODE", "off")  # the benchmarks measure streaming, not token checks
    env.update(extra or {})
    return env


async def spawn(
    name: str, module: str, args: Sequence[str], env: Mapping[str, str], *, stdin: bool = False
) -> Child:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        *args,
        stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=dict(env),
        preexec_fn=_die_with_parent,
        limit=16 * 1024 * 1024,
    )
    assert process.stdout is not None
    lines: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    reader = asyncio.create_task(_read_lines(name, process.stdout, lines), name=f"read-{name}")
    return Child(name, process, lines, reader)


async def stop(child: Child, timeout: float = 10.0) -> None:
    """SIGTERM the child, wait, SIGKILL it if it does not go; drain its output."""
    if child.process.stdin is not None:
        child.process.stdin.close()
    if child.process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            child.process.send_signal(signal.SIGTERM)
        try:
            await child.wait(timeout)
        except TimeoutError:
            logger.warning("%s did not stop within %.0f s; killing it", child.name, timeout)
            with contextlib.suppress(ProcessLookupError):
                child.process.kill()
            await child.process.wait()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(5):
            await child.reader


@contextlib.asynccontextmanager
async def running(
    name: str, module: str, args: Sequence[str], env: Mapping[str, str], *, timeout: float = 60
) -> AsyncIterator[tuple[Child, dict[str, Any]]]:
    """A server child, from its `{"port": ...}` line until the block ends."""
    child = await spawn(name, module, args, env)
    try:
        ready = await child.expect("port", timeout)
        yield child, ready
    finally:
        await stop(child)


@dataclasses.dataclass
class Usage:
    cpu_s: float
    rss: int


def usage(pid: int) -> Usage:
    """CPU seconds (user + system) and RSS of one process."""
    process = psutil.Process(pid)
    times = process.cpu_times()
    return Usage(times.user + times.system, process.memory_info().rss)


def tree_usage(pid: int) -> Usage:
    """`usage` summed over a process and its living descendants (a supervisor's children)."""
    root = psutil.Process(pid)
    total = usage(pid)
    for child in root.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = child.cpu_times()
            total.cpu_s += times.user + times.system
            total.rss += child.memory_info().rss
    return total
