"""`./dev serve` keeps its sessions and events across a restart (the embedded MongoDB's data
directory, EMBEDDED_DATA_DIR)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from embedded.redis import free_port

pytestmark = pytest.mark.timeout(180)


@contextmanager
def dev_run(data_dir: Path, redis_url: str) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MONGO_URL"}
    env.update(
        PORT=str(port), REDIS_URL=redis_url, AUTH_MODE="off", EMBEDDED_DATA_DIR=str(data_dir)
    )
    runner = subprocess.Popen(
        [sys.executable, "-m", "app", "dev"],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert runner.stderr is not None
    log = ""
    try:
        for line in runner.stderr:  # bounded by the test's timeout
            log += line
            if "Application startup complete" in line:
                break
        yield f"http://127.0.0.1:{port}"
        runner.send_signal(signal.SIGTERM)
        _, rest = runner.communicate(timeout=90)
        log += rest or ""
        assert runner.returncode == 0, log
        assert f"data in {data_dir}" in log
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()


def test_a_restart_of_the_dev_run_keeps_sessions_and_events(tmp_path: Path, redis_url: str):
    with dev_run(tmp_path, redis_url) as url:
        events = [{"type": "note", "data": {"n": n}} for n in range(20)]
        posted = httpx.post(f"{url}/v1/sessions/kept/events", json={"events": events}, timeout=30)
        assert posted.status_code == 201, posted.text
        before = httpx.get(f"{url}/v1/sessions/kept/events", timeout=30).json()["events"]
    assert len(before) == 20

    with dev_run(tmp_path, redis_url) as url:
        after = httpx.get(f"{url}/v1/sessions/kept/events", timeout=30).json()["events"]
        assert after == before
        more = httpx.post(
            f"{url}/v1/sessions/kept/events", json={"type": "note", "data": {}}, timeout=30
        )
        assert more.status_code == 201, more.text
        assert more.json()["events"][0]["id"].split(".")[0] == "21"  # positions go on
