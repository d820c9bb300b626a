"""Several API processes on one port: `app serve --workers N` (or API_WORKERS).

The supervisor binds the listening socket once and starts N children. Each child is a whole
`app serve` process (its own event loop, feed, hub and limits) that inherits the bound socket
and accepts on it, so the kernel hands each new connection to whichever child accepts first.
Nothing is shared between children but that socket: the database still sees one change
stream (or one poll loop) per child, and every per-process cap applies per child.

- A child that exits while the supervisor is running is restarted, with a log line; one that
  dies again soon after it started waits a growing delay first (0.5 s doubling to 30 s).
- SIGTERM or SIGINT to the supervisor sends SIGTERM to every child, which then shuts down as
  a single `app serve` does (app/server.py: end every stream, then uvicorn's graceful wait of
  SHUTDOWN_GRACE). A child still running SHUTDOWN_GRACE + KILL_MARGIN seconds later is killed.
- Children run in their own process group, so a terminal's Ctrl-C reaches only the
  supervisor, and each child asks the kernel for SIGTERM should the supervisor die.

The supervisor itself runs no event loop of the API and imports none of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence

logger = logging.getLogger(__name__)

KILL_MARGIN = 5.0
QUICK_DEATH = 10.0  # a child that dies sooner than this after its start waits before restarting
FIRST_DELAY = 0.5
MAX_DELAY = 30.0
_PR_SET_PDEATHSIG = 1


def bind(host: str, port: int) -> socket.socket:
    """The listening socket every child shares (SO_REUSEADDR, inheritable)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=2048)
    sock.set_inheritable(True)
    return sock


def die_with_parent() -> None:
    """In a child: ask Linux to send SIGTERM when the supervisor dies (elsewhere, nothing)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class Supervisor:
    """Runs `workers` children of `command` + `--listen-fd FD` and keeps them running."""

    def __init__(
        self, sock: socket.socket, workers: int, command: Sequence[str], *, grace: float
    ) -> None:
        self._sock = sock
        self._workers = workers
        self._command = list(command)
        self._grace = grace
        self._stopping = asyncio.Event()
        self._children: dict[int, asyncio.subprocess.Process] = {}

    def run(self) -> int:
        return asyncio.run(self._run())

    async def _run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop, signum)
        host, port = self._sock.getsockname()[:2]
        logger.info(
            "supervisor %d: %d API processes on %s:%d", os.getpid(), self._workers, host, port
        )
        async with asyncio.TaskGroup() as group:
            results = [group.create_task(self._keep(slot)) for slot in range(self._workers)]
        self._sock.close()
        codes = [task.result() for task in results]
        logger.info("supervisor %d: every API process has exited %s", os.getpid(), codes)
        return 0 if all(code == 0 for code in codes) else 1

    def _stop(self, signum: int) -> None:
        if not self._stopping.is_set():
            logger.info("%s: stopping %d API processes", signal.Signals(signum).name, self._workers)
            self._stopping.set()
            for child in self._children.values():
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signal.SIGTERM)

    async def _keep(self, slot: int) -> int:
        """Run slot `slot` until the supervisor stops; return the last child's exit status."""
        delay = FIRST_DELAY
        while True:
            child = await self._spawn()
            self._children[slot] = child
            started = time.monotonic()
            logger.info("API process %d started (pid %d)", slot, child.pid)
            if self._stopping.is_set():  # a signal came while it was starting
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signal.SIGTERM)
            code = await self._wait(child)
            if self._stopping.is_set():
                # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly
                return 0 if code == -signal.SIGTERM else code
            lived = time.monotonic() - started
            logger.warning(
                "API process %d (pid %d) exited with %s after %.1f s; restarting it",
                slot,
                child.pid,
                code,
                lived,
            )
            if lived >= QUICK_DEATH:
                delay = FIRST_DELAY
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()
            if self._stopping.is_set():
                return code
            delay = min(delay * 2, MAX_DELAY)

    async def _spawn(self) -> asyncio.subprocess.Process:
        fd = self._sock.fileno()
        return await asyncio.create_subprocess_exec(
            *self._command,
            "--listen-fd",
            str(fd),
            pass_fds=(fd,),
            process_group=0,
        )

    async def _wait(self, child: asyncio.subprocess.Process) -> int:
        """The child's exit status; once stopping, kill it if it outlives the grace."""
        waiting = asyncio.ensure_future(child.wait())
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait([waiting, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not waiting.done():
            try:
                async with asyncio.timeout(self._grace + KILL_MARGIN):
                    await asyncio.shield(waiting)
            except TimeoutError:
                logger.error(
                    "API process (pid %d) outlived the shutdown grace; killing it", child.pid
                )
                with contextlib.suppress(ProcessLookupError):
                    child.kill()
        return await waiting
