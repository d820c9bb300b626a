"""Where the tests get MongoDB and Redis, in DESIGN.md's order, and how they run the API."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import uvicorn
from starlette.applications import Starlette

from app.application import create_app
from app.server import Server, build_server
from app.services import Services
from app.settings import Settings
from embedded.redis import start_redis, stop
from embedded.runner import start_mongo
from support.waits import eventually

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class MongoSource:
    url: str
    kind: str  # "MONGO_URL", "testcontainers" or "embedded"
    process: subprocess.Popen[bytes] | None = None

    @property
    def embedded(self) -> bool:
        return self.process is not None


def docker_engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(["docker", "info"], capture_output=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


@contextlib.contextmanager
def mongo_source(*, standalone: bool = False) -> Iterator[MongoSource]:
    """MONGO_URL; else a testcontainers replica set when Docker answers; else the embedded
    MongoDB-protocol server (a replica set with change streams, or a standalone)."""
    if not standalone and os.environ.get("MONGO_URL"):
        yield MongoSource(os.environ["MONGO_URL"], "MONGO_URL")
        return
    if not standalone and docker_engine_answers():
        with _container() as url:
            yield MongoSource(url, "testcontainers")
        return
    env = dict(os.environ)
    args = ["--standalone"] if standalone else []
    process, url = start_mongo(env, extra_args=args)
    try:
        yield MongoSource(url, "embedded", process)
    finally:
        stop(process)


@contextlib.contextmanager
def _container() -> Iterator[str]:
    from testcontainers.mongodb import MongoDbContainer

    container = MongoDbContainer("mongo:8.0").with_command("--replSet rs0 --bind_ip_all")
    with container:
        host = container.get_container_host_ip()
        port = container.get_exposed_port(27017)
        container.exec(
            [
                "mongosh",
                "--quiet",
                "--eval",
                "rs.initiate({_id:'rs0',members:[{_id:0,host:'localhost:27017'}]})",
            ]
        )
        yield f"mongodb://{host}:{port}/?directConnection=true"


@contextlib.contextmanager
def redis_source() -> Iterator[str]:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    process, url = start_redis()
    try:
        yield url
    finally:
        stop(process)


@dataclasses.dataclass
class RunningAPI:
    url: str
    services: Services
    server: Server


@contextlib.asynccontextmanager
async def running_api(
    settings: Settings,
    *,
    timeout: float = 20.0,
    mongo_listeners: Sequence[Any] = (),
    http: str | None = None,
) -> AsyncIterator[RunningAPI]:
    """A real uvicorn serving create_app(settings) on a free port of 127.0.0.1.

    `http` picks another of uvicorn's HTTP protocols than the API's own (e.g. "h11").
    """
    app = create_app(settings, mongo_listeners=mongo_listeners)
    server = build_server(app, settings, port=0)
    if http is not None:
        server.config.http = http
    server.config.setup_event_loop = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    ready = asyncio.create_task(server.ready.wait())
    done, _ = await asyncio.wait({task, ready}, timeout=timeout, return_when="FIRST_COMPLETED")
    if ready not in done:
        ready.cancel()
        if task.done():
            task.result()
        raise RuntimeError("uvicorn did not start")
    try:
        yield RunningAPI(f"http://127.0.0.1:{server.port}", app.state.services, server)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout)


@contextlib.asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[str]:
    """A tiny ASGI app of a test's own on uvicorn, on a free port: yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None))
    server.config.setup_event_loop = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started, 20, "uvicorn to start")
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)
