"""`worker` command-line details: what it asks for and what it says when something is off."""

from __future__ import annotations

import dataclasses
import logging
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from app.metrics import WorkerMetrics
from app.settings import Settings
from support.worker import ROOT
from worker import cli


def test_a_taken_metrics_port_suggests_worker_metrics_port_0(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        clash = dataclasses.replace(settings, host="127.0.0.1", worker_metrics_port=port)
        assert cli._export_metrics(clash, WorkerMetrics()) is None
    (record,) = [r for r in caplog.records if r.name == "worker"]
    assert record.levelno == logging.WARNING
    assert f"worker metrics not served on port {port}" in record.getMessage()
    assert "WORKER_METRICS_PORT=0 to turn them off" in record.getMessage()


def test_the_health_check_asks_for_redis_only(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}  # no URLs, and no dev run here
    done = subprocess.run(
        [sys.executable, "-m", "worker", "--check"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == "error: REDIS_URL must be set\n"
