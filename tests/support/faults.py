"""Fault-suite helpers: the API as a real process, clients that follow a session the way an
EventSource does, and writers that retry every failure with the same event_id.

A follower reconnects with `Last-Event-ID` after any end of its stream (an error, a
`stream.reconnect`, the server gone). A writer treats any non-2xx answer, transport error or
client-side timeout as "not acknowledged: send it again with the same event_id" (appends are
idempotent on event_id), so what it counts as acknowledged is exactly what got a 2xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from app.mongo import Collections
from app.settings import Settings
from embedded.redis import free_port
from support.sse import Stream
from support.waits import eventually, eventually_async

ROOT = Path(__file__).resolve().parents[2]
# A client's pause before it tries again after a failure: its protocol (EventSource's `retry`),
# not a wait for state. Without it a refused connection would be retried in a busy loop.
RETRY_PAUSE = 0.1


def api_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of an API process on these settings, with short fault-test knobs."""
    assert settings.mongo_url is not None
    assert settings.redis_url is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGO", "REDIS"))}
    env.update(
        MONGO_URL=settings.mongo_url.get(),
        MONGO_DB=settings.mongo_db,
        REDIS_URL=settings.redis_url.get(),
        HOST="127.0.0.1",
        LOG_LEVEL="INFO",
        SSE_HEARTBEAT="1",
        SHUTDOWN_GRACE="1",
        SSE_GAP_TIMEOUT="1",
        REQUEST_TIMEOUT="1",
        AUTH_MODE="off",
        SSE_MAX_CONNECTIONS_PER_SUBJECT="1000",
        WORKER_METRICS_PORT="0",
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


@dataclasses.dataclass
class APIProcess:
    """`python -m app serve` on a fixed port, which survives the process being killed."""

    env: dict[str, str]
    log: Path
    port: int = dataclasses.field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    stop_timed_out: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.starts += 1
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app", "serve"],
                env={**self.env, "PORT": str(self.port)},
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s; waits without blocking this event loop, which
        may be running a TCP proxy the API shuts down through."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            await asyncio.to_thread(self.process.wait, 10)
        except subprocess.TimeoutExpired:
            self.stop_timed_out = True
            self.process.kill()
            await asyncio.to_thread(self.process.wait, 10)

    def rss_bytes(self) -> int:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS line")

    async def ready(self, timeout: float = 30.0) -> None:
        """Wait until /readyz answers 200 (the service ready by itself)."""

        async def answers() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"the API exited:\n{self.log.read_text(errors='replace')}")
            try:
                async with httpx.AsyncClient() as client:
                    response = await client.get(f"{self.url}/readyz", timeout=2)
            except httpx.HTTPError:
                return False
            return response.status_code == 200

        await eventually_async(answers, timeout, "the API to be ready", interval=0.1)


@contextlib.asynccontextmanager
async def api_process(settings: Settings, log: Path, **extra: str) -> AsyncIterator[APIProcess]:
    api = APIProcess(api_env(settings, **extra), log)
    api.start()
    try:
        await api.ready()
        yield api
    finally:
        await api.stop()
    assert not api.stop_timed_out, "the API did not stop on SIGTERM within 10 s"


class Follower:
    """One client following a session; `ids` is every event id it received, in order."""

    def __init__(self, client: httpx.AsyncClient, session_id: str) -> None:
        self._client = client
        self._path = f"/v1/sessions/{session_id}/stream"
        self.ids: list[str] = []
        self.connects = 0
        self.subscribed = asyncio.Event()

    async def run(self) -> None:
        while True:
            headers = {"Last-Event-ID": self.ids[-1]} if self.ids else {}
            try:
                async with self._client.stream("GET", self._path, headers=headers) as response:
                    if response.status_code == 200:
                        self.connects += 1
                        self.subscribed.set()
                        await self._read(Stream(response))
            except (httpx.HTTPError, OSError):
                pass
            await asyncio.sleep(RETRY_PAUSE)

    async def _read(self, stream: Stream) -> None:
        async for event in stream.events():
            if event.event == "stream.reconnect":
                return
            if event.id is not None:
                self.ids.append(event.id)


class Writer:
    """Appends `type: n` events with ids "<name>-<i>", each retried until acknowledged."""

    def __init__(self, client: httpx.AsyncClient, session_id: str, name: str) -> None:
        self._client = client
        self._path = f"/v1/sessions/{session_id}/events"
        self.name = name
        self.acked: dict[str, str] = {}  # event_id -> resume token, in acknowledgement order
        self.failures = 0
        self._next = 0

    async def write(self, count: int, *, timeout: float = 1.5) -> None:
        for _ in range(count):
            event_id = f"{self.name}-{self._next}"
            body = {"type": "n", "data": {"i": self._next}, "event_id": event_id}
            while True:
                try:
                    response = await self._client.post(self._path, json=body, timeout=timeout)
                except (httpx.HTTPError, OSError):
                    response = None
                if response is not None and 200 <= response.status_code < 300:
                    self.acked[event_id] = response.json()["events"][0]["id"]
                    break
                self.failures += 1
                await asyncio.sleep(RETRY_PAUSE)
            self._next += 1


@contextlib.asynccontextmanager
async def following(base_url: str, session_id: str, count: int) -> AsyncIterator[list[Follower]]:
    """`count` followers of one session, subscribed before this yields, stopped after."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    timeout = httpx.Timeout(5.0, read=15.0)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout) as client:
        followers = [Follower(client, session_id) for _ in range(count)]
        tasks = [asyncio.create_task(f.run()) for f in followers]
        try:
            await asyncio.wait_for(asyncio.gather(*(f.subscribed.wait() for f in followers)), 30)
            yield followers
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def history(collections: Collections, session_id: str) -> list[str]:
    """The session's resume tokens in stream order, from MongoDB (without voided positions)."""
    from app.store.codec import event_view

    cursor = collections.events.find({"session_id": session_id, "void": {"$ne": True}}, {"_id": 0})
    docs = sorted(await cursor.to_list(), key=lambda doc: doc["seq"])
    return [event_view(doc)["id"] for doc in docs]


async def assert_nothing_lost_or_doubled(
    collections: Collections,
    session_id: str,
    writers: list[Writer],
    followers: list[Follower],
    timeout: float = 60.0,
) -> list[str]:
    """Every acknowledged event is in the history once, and every follower ends up holding
    the whole history, each event once, in history order. Returns the history."""
    acked = {token for w in writers for token in w.acked.values()}
    tokens = await history(collections, session_id)
    assert len(tokens) == len(set(tokens))
    assert acked <= set(tokens), sorted(acked - set(tokens))[:5]
    event_ids = [
        e["event_id"]
        for e in await collections.events.find(
            {"session_id": session_id, "void": {"$ne": True}}, {"event_id": 1}
        ).to_list()
    ]
    assert sorted(event_ids) == sorted({i for w in writers for i in w.acked})  # once each
    await eventually(
        lambda: all(len(f.ids) >= len(tokens) for f in followers),
        timeout,
        "every follower to hold the whole history",
    )
    for follower in followers:
        doubled = [i for i, n in Counter(follower.ids).items() if n > 1]
        assert not doubled, doubled[:5]
        assert follower.ids == tokens
    return tokens
