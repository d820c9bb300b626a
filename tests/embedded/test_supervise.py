"""The development run's supervisor, on real child processes: restart, back off, stop."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time

import pytest

from embedded.supervise import Supervisor


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def quitter() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])


def test_a_killed_child_is_restarted_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    supervisor = Supervisor(clock=clock)
    try:
        worker = supervisor.start("worker", sleeper)
        api = supervisor.start("api", sleeper)
        first = worker.process
        assert supervisor.poll() == []
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        clock.now += 5
        with caplog.at_level(logging.INFO, logger="embedded.supervise"):
            assert supervisor.poll() == []  # noted; restarted after the first delay (1 s)
            clock.now += 1
            assert supervisor.poll() == [worker]
        assert worker.process is not first
        assert worker.process.poll() is None
        assert worker.restarts == 1
        assert api.restarts == 0
        assert (
            f"worker (pid {first.pid}) exited with -9 after 5.0s; restarting in 1s" in caplog.text
        )
        assert f"worker restarted (pid {worker.process.pid}, restart 1)" in caplog.text
    finally:
        supervisor.stop(timeout=5)
    assert all(child.process.poll() is not None for child in supervisor.children)


def test_a_child_that_keeps_dying_is_restarted_ever_more_slowly() -> None:
    clock = Clock()
    supervisor = Supervisor(clock=clock, backoff=1, max_backoff=4, stable=30)
    try:
        child = supervisor.start("api", quitter)
        delays = []
        for _ in range(5):
            child.process.wait(10)
            supervisor.poll()
            delays.append(child.delay)
            clock.now += child.delay
            assert supervisor.poll() == [child]
        assert delays == [1, 2, 4, 4, 4]
        child.process.wait(10)
        child.started_at = clock.now - 31  # as if it had stayed up past `stable`
        supervisor.poll()
        assert child.delay == 1
    finally:
        supervisor.stop(timeout=5)


def test_nothing_is_restarted_after_stop() -> None:
    clock = Clock()
    supervisor = Supervisor(clock=clock)
    child = supervisor.start("worker", sleeper)
    supervisor.stop(timeout=5)
    assert child.process.poll() is not None
    clock.now += 60
    assert supervisor.poll() == []
    assert child.restarts == 0


def test_wait_returns_early_when_a_child_exits() -> None:
    supervisor = Supervisor()
    try:
        child = supervisor.start(
            "api", lambda: subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
        )
        began = time.monotonic()
        supervisor.wait(30)
        assert child.process.poll() is not None
        assert time.monotonic() - began < 20
        supervisor.wait(0.01)  # nothing running: a plain pause
    finally:
        supervisor.stop(timeout=5)
