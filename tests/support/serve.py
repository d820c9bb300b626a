"""A real `app serve` process on a free port of 127.0.0.1, for tests of what one API process
does at its edges (limits, outages, connection storms): the same entry point operators run."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pymongo

from app.settings import Secret, Settings
from embedded.redis import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclasses.dataclass
class ServedAPI:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def client(self, **options: object) -> httpx.AsyncClient:
        options.setdefault("timeout", 30.0)
        return httpx.AsyncClient(base_url=self.url, **options)  # type: ignore[arg-type]

    async def metric(self, sample: str) -> float:
        """One sample of /metrics, e.g. 'agentstream_sse_connections' or
        'agentstream_limit_rejections_total{code="over_capacity"}' (0 when absent)."""
        async with self.client() as client:
            text = (await client.get("/metrics")).text
        for line in text.splitlines():
            name, _, value = line.rpartition(" ")
            if name == sample:
                return float(value)
        return 0.0


def module_settings(mongo_url: str, redis_url: str, **changes: object) -> Settings:
    """Settings for a server shared by a module's tests (a database of its own)."""
    base = Settings(
        mongo_url=Secret(mongo_url),
        redis_url=Secret(redis_url),
        mongo_db=f"test_{uuid.uuid4().hex[:12]}",
        sse_poll_interval=0.05,
        sse_heartbeat=5.0,
        sse_gap_timeout=1.0,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def serve_env(settings: Settings, **extra: str) -> dict[str, str]:
    assert settings.mongo_url is not None
    assert settings.redis_url is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGO", "REDIS"))}
    env.update(
        MONGO_URL=settings.mongo_url.get(),
        MONGO_DB=settings.mongo_db,
        REDIS_URL=settings.redis_url.get(),
        HOST="127.0.0.1",
        SSE_POLL_INTERVAL=str(settings.sse_poll_interval),
        SSE_HEARTBEAT=str(settings.sse_heartbeat),
        SSE_GAP_TIMEOUT=str(settings.sse_gap_timeout),
        SHUTDOWN_GRACE="5",
        AUTH_MODE="off",  # access control is not what these tests are about
        LOG_LEVEL="INFO",
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


@contextlib.contextmanager
def serving(
    settings: Settings, log_dir: Path, *, timeout: float = 60.0, **extra: str
) -> Iterator[ServedAPI]:
    """`python -m app serve` with `settings`' database and Redis, and `extra` variables; a plain
    context manager, so a module can share one server (no event loop is involved)."""
    port = free_port()
    env = serve_env(settings, PORT=str(port), **extra)
    log = log_dir / f"serve-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    served = ServedAPI(process, port, log)
    try:
        _wait_healthy(served, timeout)
        yield served
    finally:
        _stop(process)
        with pymongo.MongoClient(env["MONGO_URL"], serverSelectionTimeoutMS=5000) as client:
            client.drop_database(settings.mongo_db)


@contextlib.asynccontextmanager
async def app_serve(
    settings: Settings, log_dir: Path, *, timeout: float = 60.0, **extra: str
) -> AsyncIterator[ServedAPI]:
    """`serving` for one test; the wait for start-up runs in a thread, so the test's event loop
    (a TCP proxy between the server and MongoDB, say) keeps running meanwhile."""
    context = serving(settings, log_dir, timeout=timeout, **extra)
    served = await asyncio.to_thread(context.__enter__)
    try:
        yield served
    finally:
        await asyncio.to_thread(context.__exit__, None, None, None)


def _wait_healthy(served: ServedAPI, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while True:
            if served.process.poll() is not None:
                raise AssertionError(f"app serve exited:\n{served.output()}")
            try:
                if client.get(f"{served.url}/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"app serve did not answer in {timeout}s:\n{served.output()}")
            with contextlib.suppress(subprocess.TimeoutExpired):
                served.process.wait(0.05)  # wakes early if the process exits


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
