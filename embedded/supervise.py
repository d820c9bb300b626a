"""Keep the development run's API and worker processes alive, like compose's
`restart: unless-stopped`.

A `Supervisor` starts each child through a function it keeps, and `poll()` starts one again
when it has exited, with a log line naming it and its exit code. A child that keeps dying soon
after it starts is restarted after a delay that doubles each time (1 s up to 30 s), so a broken
configuration does not spin; one that stayed up for `stable` seconds starts from 1 s again.
`stop()` ends every child, newest first, and no child is restarted after it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import subprocess
import time
from collections.abc import Callable

from embedded.redis import stop as stop_process

logger = logging.getLogger(__name__)

Start = Callable[[], subprocess.Popen[bytes]]


@dataclasses.dataclass(slots=True)
class Child:
    name: str
    start: Start
    process: subprocess.Popen[bytes]
    started_at: float
    restarts: int = 0
    delay: float = 0.0
    restart_at: float | None = None  # set while it waits to be started again


class Supervisor:
    def __init__(
        self,
        *,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        stable: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._stable = stable
        self._clock = clock
        self._children: list[Child] = []
        self._stopped = False

    @property
    def children(self) -> list[Child]:
        return list(self._children)

    def start(self, name: str, start: Start) -> Child:
        """Start a child and keep it running until `stop()`."""
        child = Child(name, start, start(), self._clock())
        self._children.append(child)
        return child

    def poll(self) -> list[Child]:
        """Restart the children that exited and whose delay has passed; return those restarted."""
        restarted = []
        now = self._clock()
        for child in self._children:
            if self._stopped:
                break
            if child.restart_at is None:
                code = child.process.poll()
                if code is None:
                    continue
                ran = now - child.started_at
                child.delay = (
                    self._backoff
                    if ran >= self._stable or child.delay == 0
                    else min(child.delay * 2, self._max_backoff)
                )
                child.restart_at = now + child.delay
                logger.error(
                    "%s (pid %d) exited with %d after %.1fs; restarting in %gs",
                    child.name,
                    child.process.pid,
                    code,
                    ran,
                    child.delay,
                )
            if now >= child.restart_at:
                child.process = child.start()
                child.started_at, child.restart_at = now, None
                child.restarts += 1
                logger.warning(
                    "%s restarted (pid %d, restart %d)",
                    child.name,
                    child.process.pid,
                    child.restarts,
                )
                restarted.append(child)
        return restarted

    def wait(self, timeout: float) -> None:
        """Block up to `timeout` seconds, returning early when a running child exits."""
        live = [c.process for c in self._children if c.process.poll() is None]
        if not live:
            time.sleep(timeout)
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            live[-1].wait(timeout)

    def stop(self, timeout: float) -> None:
        """Stop every child, newest first; none is restarted afterwards."""
        self._stopped = True
        for child in reversed(self._children):
            if child.process.poll() is None:
                logger.info("stopping %s (pid %d)", child.name, child.process.pid)
            stop_process(child.process, timeout=timeout)
