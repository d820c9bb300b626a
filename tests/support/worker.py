"""Worker test helpers: workers in process and as processes, reading a run's record and
events, and a fake OpenAI server speaking the streaming protocol.

The fixtures that use them are in tests/worker/conftest.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from arq.worker import Worker
from redis.asyncio import Redis

from app.jobs import QUEUE_NAME
from app.mongo import Collections, Document
from app.settings import Settings
from app.store.runs import run_event_id
from support.waits import eventually, eventually_async
from worker.settings import close_worker, create_worker

ROOT = Path(__file__).resolve().parents[2]
ARQ_DB = 14  # the Redis database these tests own: flushed before and after each test


def with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", "", ""))


async def flush(url: str) -> None:
    client: Redis = Redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def running_worker(settings: Settings, **options: Any) -> AsyncIterator[Worker]:
    """An arq worker in this process and loop, polling every 20 ms, stopped on exit."""
    options.setdefault("poll_delay", 0.02)
    worker = create_worker(settings, handle_signals=False, **options)
    task = asyncio.create_task(worker.async_run())
    try:
        yield worker
    finally:
        await close_worker(worker)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


async def burst(settings: Settings, **options: Any) -> Worker:
    """Run every queued job in this process, then return (arq's burst mode)."""
    worker = create_worker(settings, burst=True, poll_delay=0, handle_signals=False, **options)
    try:
        await asyncio.wait_for(worker.async_run(), 60)
    finally:
        await close_worker(worker)
    return worker


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a `python -m worker` process needs for these settings."""
    assert settings.mongo_url is not None
    assert settings.redis_url is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGO", "REDIS"))}
    env.update(
        MONGO_URL=settings.mongo_url.get(),
        MONGO_DB=settings.mongo_db,
        REDIS_URL=settings.redis_url.get(),
        JOB_TIME_LIMIT=str(settings.job_time_limit),
        JOB_MAX_TRIES=str(settings.job_max_tries),
        WORKER_CONCURRENCY=str(settings.worker_concurrency),
        SHUTDOWN_GRACE=str(settings.shutdown_grace),
        WORKER_METRICS_PORT=str(settings.worker_metrics_port),
        EMIT_FLUSH_INTERVAL=str(settings.emit_flush_interval),
        EMIT_FLUSH_EVENTS=str(settings.emit_flush_events),
        OPENAI_BASE_URL=settings.openai_base_url,
        LOG_LEVEL="INFO",
        PYTHONPATH=str(ROOT),
    )
    if settings.agents:
        env["AGENTS"] = ",".join(settings.agents)
    env.update(extra)
    return env


@dataclasses.dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    async def wait(self, timeout: float) -> int:
        await eventually(lambda: self.process.poll() is not None, timeout, "the worker to exit")
        return self.process.returncode

    async def wait_for_output(self, text: str, timeout: float = 20.0) -> None:
        def logged() -> bool:
            if self.process.poll() is not None and text not in self.output():
                raise AssertionError(f"worker exited without logging {text!r}:\n{self.output()}")
            return text in self.output()

        await eventually(logged, timeout, f"the worker to log {text!r}")


def spawn_worker_process(settings: Settings, log: Path, *args: str, **env: str) -> WorkerProcess:
    """Start `python -m worker` for these settings, its output in `log`."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "worker", *args],
            env=worker_env(settings, **env),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    return WorkerProcess(process, log)


async def wait_status(
    collections: Collections, run_id: str, *statuses: str, timeout: float = 20.0
) -> Document:
    """The run's record once its status is one of `statuses` and, for an ending status, its
    terminal event is written too (the record moves first). Polls MongoDB to a deadline."""
    record: Document | None = None

    async def reached() -> bool:
        nonlocal record
        record = await collections.runs.find_one({"run_id": run_id}, {"_id": 0})
        if record is None or record["status"] not in statuses:
            return False
        if record["status"] in ("queued", "running"):
            return True
        return (
            await collections.events.find_one({"event_id": run_event_id(run_id, "end")}) is not None
        )

    await eventually_async(reached, timeout, f"run {run_id} to be {statuses}", interval=0.02)
    assert record is not None
    return record


async def wait_event(
    collections: Collections, session_id: str, type: str, timeout: float = 20.0
) -> Document:
    found: Document | None = None

    async def written() -> bool:
        nonlocal found
        found = await collections.events.find_one({"session_id": session_id, "type": type})
        return found is not None

    await eventually_async(written, timeout, f"a {type} event in {session_id}", interval=0.02)
    assert found is not None
    return found


async def session_events(collections: Collections, session_id: str) -> list[Document]:
    """The session's events in stream order, without voided positions."""
    cursor = collections.events.find({"session_id": session_id, "void": {"$ne": True}}, {"_id": 0})
    return sorted(await cursor.to_list(), key=lambda doc: doc["seq"])


async def queue_length(settings: Settings) -> int:
    assert settings.redis_url is not None
    client: Redis = Redis.from_url(settings.redis_url.get())
    try:
        return int(await client.zcard(QUEUE_NAME))
    finally:
        await client.aclose()


def deltas_text(events: list[Document]) -> str:
    return "".join(e["data"]["delta"] for e in events if e["type"] == "message.delta")


def types(events: list[Document]) -> list[str]:
    return [e["type"] for e in events]


# A fake OpenAI chat.completions endpoint: raw asyncio HTTP/1.1, chunked SSE like the real one.


@dataclasses.dataclass
class Reply:
    status: int = 200
    chunks: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    body: dict[str, Any] | None = None  # the JSON body of an error reply
    delay: float = 0.0  # seconds between chunks
    done: bool = True  # end with `data: [DONE]`


def text_chunks(*deltas: str, model: str = "gpt-test") -> list[dict[str, Any]]:
    """chat.completion.chunk objects as OpenAI streams them: role, content deltas, stop."""

    def chunk(delta: dict[str, str], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    return [
        chunk({"role": "assistant", "content": ""}),
        *(chunk({"content": d}) for d in deltas),
        chunk({}, "stop"),
    ]


class FakeOpenAI:
    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.requests: list[dict[str, Any]] = []
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def __aenter__(self) -> FakeOpenAI:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in lines[1:] if line)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(
                {"method": method, "path": path, "headers": headers, "json": orjson.loads(body)}
            )
            reply = self.replies.pop(0) if self.replies else Reply(chunks=text_chunks("ok"))
            await self._respond(writer, reply)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _respond(self, writer: asyncio.StreamWriter, reply: Reply) -> None:
        if reply.status >= 400:
            payload = orjson.dumps(reply.body or {})
            writer.write(
                f"HTTP/1.1 {reply.status} Error\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
            return
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        )
        events = [b"data: " + orjson.dumps(c) + b"\n\n" for c in reply.chunks]
        if reply.done:
            events.append(b"data: [DONE]\n\n")
        for event in events:
            writer.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
            await writer.drain()
            if reply.delay:
                await asyncio.sleep(reply.delay)
        writer.write(b"0\r\n\r\n")
        await writer.drain()


DOC = ROOT / "README.md"


def snippet(name: str) -> str:
    """The fenced code block that follows `<!-- snippet: name -->` in README.md."""
    text = DOC.read_text()
    match = re.search(rf"<!-- snippet: {name} -->\s*```python\n(.*?)```", text, re.S)
    assert match, f"README.md has no snippet {name!r}"
    return match.group(1)
