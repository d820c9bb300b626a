"""`python -m app serve` as a real subprocess on a free port, for tests that need the CLI's
whole start-up (settings from the environment, logging, uvicorn) rather than an in-process app.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import IO

import httpx

from embedded.redis import free_port
from support.waits import eventually_sync


@dataclasses.dataclass(frozen=True)
class Served:
    url: str
    log: Callable[[], str]  # the server's log so far (its last 20,000 characters)


@contextlib.contextmanager
def app_serve(
    mongo_url: str,
    redis_url: str,
    env: Mapping[str, str] | None = None,
    *,
    timeout: float = 60.0,
) -> Iterator[Served]:
    """Serve the API in a subprocess with its own database; yield its URL and log.

    Its log goes to a temporary file (a pipe nobody reads would fill and stall the server) and
    is shown when start-up fails. The database is dropped afterwards.
    """
    port = free_port()
    database = f"test_{uuid.uuid4().hex[:12]}"
    full = {
        **os.environ,
        "MONGO_URL": mongo_url,
        "REDIS_URL": redis_url,
        "MONGO_DB": database,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": "WARNING",
        **(env or {}),
    }
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen([sys.executable, "-m", "app", "serve"], env=full, stderr=log)
        try:
            eventually_sync(
                lambda: server.poll() is not None or _ready(url), timeout, "the API to start"
            )
            if server.poll() is not None:
                raise RuntimeError(f"app serve exited: {_tail(log)}")
            yield Served(url, lambda: _tail(log))
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            _drop(mongo_url, database)


def _tail(log: IO[bytes]) -> str:
    log.flush()
    log.seek(0)
    return log.read().decode(errors="replace")[-20000:]


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _drop(mongo_url: str, database: str) -> None:
    from pymongo import MongoClient

    with MongoClient(mongo_url) as client:
        client.drop_database(database)
