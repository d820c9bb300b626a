"""The first Quick start command: API and worker on embedded MongoDB and Redis, a dead worker
restarted, everything stopped cleanly."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
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


PROJECT = Path(__file__).resolve().parents[2]


class DevRun:
    """`app dev` in its own session (like a terminal's foreground job), its output collected."""

    def __init__(self, directory: Path, **extra: str) -> None:
        self.port = free_port()
        self.env = {k: v for k, v in os.environ.items() if k not in ("MONGO_URL", "REDIS_URL")}
        self.env.update(
            PYTHONPATH=str(PROJECT),
            PORT=str(self.port),
            LOG_LEVEL="INFO",
            WORKER_METRICS_PORT="0",
            **extra,
        )
        self.directory = directory
        self.lines: list[str] = []
        self._seen = threading.Condition()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app", "dev", "--ephemeral"],
            cwd=directory,
            env=self.env,
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._seen:
                self.lines.append(line)
                self._seen.notify_all()

    def wait_for(self, text: str, timeout: float = 60) -> int:
        """The index of the first output line holding `text`, once it is there."""
        with self._seen:
            found = self._seen.wait_for(
                lambda: (
                    next((i for i, line in enumerate(self.lines) if text in line), None) is not None
                    or self.process.poll() is not None
                ),
                timeout,
            )
            for index, line in enumerate(self.lines):
                if text in line:
                    return index
        raise AssertionError(f"{text!r} never came ({found=}):\n{self.output}")

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def command(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Another command from the same directory, with no MONGO_URL or REDIS_URL set."""
        return subprocess.run(
            [sys.executable, "-m", *args],
            cwd=self.directory,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def interrupt(self) -> None:
        """Ctrl-C in a terminal: SIGINT to every process of the foreground group."""
        os.killpg(self.process.pid, signal.SIGINT)

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        for pid in self.pids().values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._reader.join(10)
        # A child that outlived the run would still hold the pipe: then the reader (a daemon
        # thread) keeps it, and closing it here would wait on the reader forever.
        if self.process.stdout is not None and not self._reader.is_alive():
            self.process.stdout.close()
        assert not self._reader.is_alive(), f"a process of the run outlived it:\n{self.output}"

    def pids(self) -> dict[str, int]:
        return {
            match.group(1): int(match.group(2))
            for match in re.finditer(r"stopping (\w+) \(pid (\d+)\)", self.output)
        }


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ctrl_c_stops_quietly_databases_last_and_other_commands_find_the_run(
    tmp_path: Path,
) -> None:
    run = DevRun(tmp_path)
    try:
        announced = run.wait_for("API on http://")
        # Announced only once the port is bound (uvicorn binds after its start-up).
        assert run.wait_for("Application startup complete") < announced
        assert httpx.get(f"http://127.0.0.1:{run.port}/healthz", timeout=10).status_code == 200
        state = json.loads((tmp_path / ".dev-run.json").read_text())  # as the README says
        assert set(state) == {"pid", "MONGO_URL", "REDIS_URL"}
        assert state["pid"] == run.process.pid

        stats = run.command("app", "stats")
        assert stats.returncode == 0, stats.stderr
        assert "using the running dev run's servers" in stats.stderr
        assert "MONGO_URL=mongodb://127.0.0.1:" in stats.stderr
        migrate = run.command("app", "migrate")
        assert migrate.returncode == 0, migrate.stderr
        assert "nothing to change" in migrate.stdout
        deadline = time.monotonic() + 60
        while (check := run.command("worker", "--check")).returncode != 0:
            assert time.monotonic() < deadline, check.stderr  # the worker's first health key
        assert "REDIS_URL=redis://127.0.0.1:" in check.stderr
        assert "MONGO_URL" not in check.stderr  # the health check needs Redis only

        started = time.monotonic()
        run.interrupt()
        assert run.process.wait(timeout=60) == 0, run.output
        elapsed = time.monotonic() - started
    finally:
        run.close()
    print(f"Ctrl-C to exit: {elapsed:.1f}s")
    assert elapsed < 20, run.output
    assert "Traceback" not in run.output, run.output
    stopped = list(run.pids())
    assert stopped == ["worker", "api", "redis", "mongodb"], run.output
    assert not any(alive(pid) for pid in run.pids().values())
    assert not (tmp_path / ".dev-run.json").exists()
    assert not group_alive(run.process.pid)


def test_a_second_ctrl_c_kills_everything_at_once(tmp_path: Path) -> None:
    run = DevRun(tmp_path, SHUTDOWN_GRACE="60")
    try:
        run.wait_for("API on http://")
        url = f"http://127.0.0.1:{run.port}"
        body = {"agent": "echo", "input": {"text": "x" * 600, "delay": 0.1}}  # a 60 s run
        run_id = httpx.post(f"{url}/v1/sessions/s/runs", json=body, timeout=10).json()["run_id"]
        run.wait_for(f"run {run_id}: agent echo started")
        run.interrupt()  # the worker now waits up to SHUTDOWN_GRACE for the run
        run.wait_for("SIGINT: stopping")
        started = time.monotonic()
        run.interrupt()
        code = run.process.wait(timeout=30)
        elapsed = time.monotonic() - started
    finally:
        run.close()
    print(f"second Ctrl-C to exit: {elapsed:.1f}s")
    assert code == 130, run.output
    assert "SIGINT again: killing everything now" in run.output
    assert elapsed < 15, run.output
    assert not any(alive(pid) for pid in run.pids().values())
    assert not (tmp_path / ".dev-run.json").exists()


def test_dev_without_arguments_lists_every_command() -> None:
    shown = subprocess.run(
        [str(PROJECT / "dev")], capture_output=True, text=True, timeout=30, check=False
    )
    assert shown.returncode == 2
    commands = [line.split()[1] for line in shown.stdout.splitlines() if line.startswith("  ./")]
    assert commands == ["serve", "test", "check", "bench", "fuzz", "app", "worker"]
    assert "set -euo" not in shown.stdout
    assert "#" not in shown.stdout
