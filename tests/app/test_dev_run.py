"""The first Quick start command: API and worker on embedded MongoDB and Redis, a dead worker
restarted, everything stopped cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from embedded.redis import free_port

pytestmark = pytest.mark.timeout(120)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def child_running(parent: int, module: str) -> int:
    """The pid of `parent`'s child running `python -m module`."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    for pid in children:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if argv[1:3] == [b"-m", module.encode()]:
            return int(pid)
    raise AssertionError(f"no child runs -m {module}")


def test_the_embedded_run_serves_and_stops_everything_on_sigterm() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("MONGO_URL", "REDIS_URL")}
    env.update(PORT=str(port), LOG_LEVEL="INFO")
    runner = subprocess.Popen(
        [sys.executable, "-m", "app", "dev"],
        env=env,
        start_new_session=True,  # its own process group: every child it starts is in it
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    pgid = runner.pid
    assert runner.stderr is not None
    log = ""
    try:
        for line in runner.stderr:  # bounded by the test's timeout
            log += line
            if "Application startup complete" in line:
                break
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["feed"]["mode"] == "change_stream"

        # A worker that dies is started again, like compose's restart: unless-stopped.
        worker = child_running(runner.pid, "worker")
        os.kill(worker, signal.SIGKILL)
        for line in runner.stderr:
            log += line
            if "worker restarted" in line:
                break
        assert f"worker (pid {worker}) exited with -9" in log
        assert child_running(runner.pid, "worker") != worker

        runner.send_signal(signal.SIGTERM)
        _, rest = runner.communicate(timeout=60)
        log += rest or ""
        assert runner.returncode == 0, log
    finally:
        if runner.poll() is None:
            os.killpg(pgid, signal.SIGKILL)
            runner.wait()
    # The runner waits for each child it started before it exits: none may be left.
    assert not group_alive(pgid), "a process the run started is still alive"
    assert "embedded MongoDB-protocol server (development only): mongodb://127.0.0.1:" in log
    assert "embedded Redis: redis://127.0.0.1:" in log
