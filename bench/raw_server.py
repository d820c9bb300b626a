"""The Python ceiling: a raw asyncio socket server writing the same SSE bytes as ours.

`python -m bench.raw_server --rate R --expect N --run-for S`

No framework and no per-subscriber task: it answers `GET /v1/sessions/{id}/stream` with the
same headers and HTTP/1.1 chunked framing uvicorn uses, generates the same event documents at
the same rate as bench/synthetic.py, frames each once with `app.sse.event_frame` and writes
each session's frames of a tick to every subscriber's transport in one write. A subscriber
with more than `--buffer-bytes` unsent is dropped, as ours drops a slow consumer.
Prints `{"port": ..., "pid": ...}` when it serves; exits by itself after `--max-lifetime`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import sys
from typing import cast

import orjson
import uvloop

from app.sse import event_frame, retry_frame
from bench.procs import raise_nofile
from bench.synthetic import Pacer, event_doc, wait_for

logger = logging.getLogger(__name__)

HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    b"cache-control: no-store\r\nx-accel-buffering: no\r\ntransfer-encoding: chunked\r\n\r\n"
)
PATH = re.compile(rb"^GET /v1/sessions/([A-Za-z0-9._:-]{1,128})/stream[ ?]")


def chunk(body: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(body), body)


class Hub:
    def __init__(self, buffer_bytes: int) -> None:
        self.sessions: dict[str, set[asyncio.Transport]] = {}
        self.buffer_bytes = buffer_bytes
        self.generated = 0
        self.dropped = 0

    @property
    def subscribers(self) -> int:
        return sum(len(s) for s in self.sessions.values())

    def write(self, session_id: str, body: bytes) -> None:
        data = chunk(body)
        for transport in list(self.sessions.get(session_id, ())):
            if transport.get_write_buffer_size() > self.buffer_bytes:
                self.dropped += 1
                transport.close()
            else:
                transport.write(data)


class Connection(asyncio.Protocol):
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.transport: asyncio.Transport | None = None
        self.session_id: str | None = None
        self.head = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        if self.session_id is not None or self.transport is None:
            return
        self.head += data
        if b"\r\n\r\n" not in self.head:
            return
        if self.head.startswith(b"GET /bench-stats "):
            body = orjson.dumps(
                {"generated": self.hub.generated, "subscribers": self.hub.subscribers}
            )
            self.transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
            )
            self.transport.close()
            return
        match = PATH.match(self.head)
        if match is None:
            self.transport.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
            self.transport.close()
            return
        self.session_id = match.group(1).decode()
        self.transport.write(HEAD + chunk(retry_frame(2000)))
        self.hub.sessions.setdefault(self.session_id, set()).add(self.transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.session_id is not None and self.transport is not None:
            subscribers = self.hub.sessions.get(self.session_id)
            if subscribers is not None:
                subscribers.discard(self.transport)
                if not subscribers:
                    del self.hub.sessions[self.session_id]


async def generate(hub: Hub, rate: float, expect: int, run_for: float) -> None:
    await wait_for(lambda: hub.subscribers, expect, 120.0)
    if rate <= 0:
        return
    last: dict[str, int] = {}
    turn = 0
    async for due in Pacer(rate).ticks(run_for):
        sessions = list(hub.sessions)
        if not sessions:
            continue
        frames: dict[str, list[bytes]] = {}
        for _ in range(due):
            session_id = sessions[turn % len(sessions)]
            turn += 1
            seq = last[session_id] = last.get(session_id, 0) + 1
            frames.setdefault(session_id, []).append(event_frame(event_doc(session_id, seq)))
        for session_id, parts in frames.items():
            hub.write(session_id, b"".join(parts))
        hub.generated += due


async def serve(args: argparse.Namespace) -> None:
    hub = Hub(args.buffer_bytes)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(hub), "127.0.0.1", 0, backlog=2048)
    port = server.sockets[0].getsockname()[1]
    print(orjson.dumps({"port": port, "pid": os.getpid()}).decode(), flush=True)
    stop = asyncio.Event()
    for signum in (2, 15):
        loop.add_signal_handler(signum, stop.set)
    generator = asyncio.create_task(generate(hub, args.rate, args.expect, args.run_for))
    try:
        async with asyncio.timeout(args.max_lifetime):
            await stop.wait()
    except TimeoutError:
        logger.warning("max lifetime reached; stopping")
    generator.cancel()
    await asyncio.gather(generator, return_exceptions=True)
    server.close()
    for subscribers in hub.sessions.values():
        for transport in subscribers:
            transport.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.raw_server", description=__doc__)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--expect", type=int, default=0)
    parser.add_argument("--run-for", type=float, default=60.0)
    parser.add_argument("--buffer-bytes", type=int, default=1000 * 400)
    parser.add_argument("--max-lifetime", type=float, default=900.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    raise_nofile()
    uvloop.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
