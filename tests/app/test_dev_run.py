"""The first Quick start command: API and worker on embedded MongoDB and Redis, stopped cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

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


def test_the_embedded_run_serves_and_stops_everything_on_sigterm() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("MONGO_URL", "REDIS_URL")}
    env.update(PORT=str(port), LOG_LEVEL="INFO")
    runner = subprocess.Popen(
        [sys.executable, "-m", "app", "dev", "--ephemeral"],
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
