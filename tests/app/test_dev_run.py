"""The first Quick start command: API and worker on embedded MongoDB and Redis, a dead worker
restarted, everything stopped cleanly."""

from __future__ import annotations

import logging
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
    drop = ("MONGO_URL", "REDIS_URL", "AUTH_MODE", "AUTH_JWT_SECRET", "AUTH_JWT_PUBLIC_KEY")
    env = {k: v for k, v in os.environ.items() if k not in drop}
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
        assert ready.json()["auth"] == "off"  # no key given: the dev run serves without tokens

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
    assert "auth is off: every client reads and writes every session" in log


def test_the_embedded_run_checks_tokens_only_when_a_key_is_given(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from app.settings import AuthMode, Secret, Settings
    from embedded.runner import _choose_auth

    caplog.set_level(logging.INFO, logger="embedded.runner")
    env: dict[str, str] = {}
    _choose_auth(Settings(), env)
    assert env["AUTH_MODE"] == "off"
    _choose_auth(Settings(auth_jwt_secret=Secret("k" * 32)), env)
    assert env["AUTH_MODE"] == "jwt"
    assert "auth is on (AUTH_MODE=jwt)" in caplog.text
    _choose_auth(Settings(auth_mode=AuthMode.OFF, auth_jwt_secret=Secret("k" * 32)), env)
    assert env["AUTH_MODE"] == "off"
