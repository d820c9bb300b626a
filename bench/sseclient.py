"""The load client: N SSE connections over raw asyncio sockets, in a process of its own.

`python -m bench.sseclient --port P --clients N --sessions K --warmup W --duration S`

Connection i reads session `<prefix><i % K>`. The client parses just enough of each chunk to
count events, read the wall-clock send time every event carries (`"sent_ns":<time.time_ns()>`
in its data, stamped by the writer) and keep the last `id:` for reconnects. It prints JSON
lines on stdout: `{"ready": ...}` when every connection has its response headers,
`{"mark": "start"}` and `{"mark": "end"}` around the measured window, then `{"result": ...}`;
progress goes to stderr. With `--go-on-stdin` the window starts on a line of stdin, so several
client processes measure the same seconds; after it they hold their connections `--linger`
seconds while the orchestrator samples the server. `--latency first` times only the oldest
event of each socket read (cheaper; conservative, as the others in it were sent later).
Everything is bounded: connecting by `--connect-timeout`, the wait for "go" by
`--go-timeout`, the window by `--duration`, reconnects by `--max-reconnects`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re
import resource
import sys
import time
from array import array
from typing import Any, cast

import orjson
import uvloop

from bench.procs import raise_nofile
from bench.stats import latency_summary

logger = logging.getLogger(__name__)

SENT = re.compile(rb'"sent_ns":(\d+)')
MARK = b'"sent_ns":'
END_OF_BODY = b"\r\n0\r\n\r\n"
MAX_SAMPLES = 5_000_000


class Totals:
    """Counters shared by every connection of this process."""

    def __init__(self) -> None:
        self.events = 0
        self.window_events = 0
        self.heartbeats = 0
        self.reconnects = 0
        self.errors = 0
        self.error_samples: list[str] = []
        self.recording = False
        self.latencies_us: array[int] = array("q")

    def error(self, message: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(message)


class Connection(asyncio.Protocol):
    """One SSE stream. Fed by the event loop; does the least parsing that answers the questions."""

    def __init__(self, client: Client, path: str, last_id: str | None) -> None:
        self.client = client
        self.path = path
        self.last_id = last_id
        self.transport: asyncio.Transport | None = None
        self.headers = asyncio.get_running_loop().create_future()
        self._head = b""
        self._tail = b""
        self.window_heartbeats = 0
        self.ended = False  # the server ended the response (stream.reconnect, then EOF)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's is no subclass
        resume = f"Last-Event-ID: {self.last_id}\r\n" if self.last_id else ""
        request = (
            f"GET {self.path} HTTP/1.1\r\nHost: {self.client.host}\r\n"
            f"Accept: text/event-stream\r\n{resume}\r\n"
        )
        transport.write(request.encode())

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        if not self.headers.done():
            data = self._read_head(data)
            if not data:
                return
        buffer = self._tail + data if self._tail else data
        cut = buffer.rfind(b"\n\n")
        if cut < 0:
            self._tail = buffer
        else:
            self._tail = buffer[cut + 2 :]
            self._take(buffer[: cut + 2], now)
        if buffer.endswith(END_OF_BODY):
            self.ended = True
            assert self.transport is not None
            self.transport.close()

    def _read_head(self, data: bytes) -> bytes:
        head = self._head + data
        end = head.find(b"\r\n\r\n")
        if end < 0:
            self._head = head
            return b""
        status = head[: head.find(b"\r\n")]
        if b" 200 " not in status + b" ":
            self.headers.set_exception(ConnectionError(status.decode(errors="replace")))
            assert self.transport is not None
            self.transport.close()
            return b""
        self.headers.set_result(None)
        self._head = b""
        return head[end + 4 :]

    def _take(self, body: bytes, now: int) -> None:
        totals = self.client.totals
        if self.client.every:
            sent = SENT.findall(body)
            count = len(sent)
        else:
            count = body.count(MARK)
            first = SENT.search(body) if count else None
            sent = [first.group(1)] if first is not None else []
        if count:
            totals.events += count
            if totals.recording:
                totals.window_events += count
                if len(totals.latencies_us) < MAX_SAMPLES:
                    totals.latencies_us.extend([(now - int(s)) // 1000 for s in sent])
            at = body.rfind(b"\nid: ")
            start = at + 5 if at >= 0 else (4 if body.startswith(b"id: ") else -1)
            if start >= 0:
                self.last_id = body[start : body.index(b"\n", start)].decode().strip()
        beats = body.count(b"\n:") + body.startswith(b":")
        if beats:
            totals.heartbeats += beats
            if totals.recording:
                self.window_heartbeats += beats

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.headers.done():
            self.headers.set_exception(exc or ConnectionError("closed before the headers"))
        if self.client.stopping:
            return
        if exc is not None:
            self.client.totals.error(f"{type(exc).__name__}: {exc}")
        elif not self.ended:
            self.client.totals.error("the server closed the connection")
        self.client.reconnect(self)


class Client:
    def __init__(self, args: argparse.Namespace) -> None:
        self.host: str = args.host
        self.port: int = args.port
        self.args = args
        self.totals = Totals()
        self.stopping = False
        self.every = args.latency == "every"
        self.connections: list[Connection] = []
        self._gate = asyncio.Semaphore(args.connect_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    def path(self, index: int) -> str:
        session = f"{self.args.prefix}{(self.args.offset + index) % self.args.sessions}"
        return self.args.path.replace("{session}", session)

    async def open(self, path: str, last_id: str | None = None) -> Connection | None:
        loop = asyncio.get_running_loop()
        async with self._gate:
            try:
                _, conn = await loop.create_connection(
                    lambda: Connection(self, path, last_id), self.host, self.port
                )
                async with asyncio.timeout(self.args.connect_timeout):
                    await conn.headers
            except (OSError, TimeoutError) as exc:
                self.totals.error(f"connect: {type(exc).__name__}: {exc}")
                return None
        self.connections.append(conn)
        return conn

    def reconnect(self, old: Connection) -> None:
        with contextlib.suppress(ValueError):
            self.connections.remove(old)
        if self.totals.reconnects >= self.args.max_reconnects:
            return
        self.totals.reconnects += 1
        task = asyncio.create_task(self._reopen(old))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reopen(self, old: Connection) -> None:
        await asyncio.sleep(self.args.reconnect_delay)
        if not self.stopping:
            await self.open(old.path, old.last_id)

    async def connect_all(self) -> float:
        started = time.monotonic()
        await asyncio.gather(*(self.open(self.path(i)) for i in range(self.args.clients)))
        return time.monotonic() - started

    def close(self) -> None:
        self.stopping = True
        for conn in self.connections:
            if conn.transport is not None:
                conn.transport.close()


def _emit(line: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(line).decode() + "\n")
    sys.stdout.flush()


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _window(client: Client, duration: float, progress: float) -> float:
    """Record for `duration` seconds, with a progress line every `progress` seconds."""
    totals = client.totals
    started = time.monotonic()
    totals.recording = True
    _emit({"mark": "start"})
    end = started + duration
    last_events, last_time = 0, started
    ticks = max(1, round(duration / progress))
    for tick in range(1, ticks + 1):
        await asyncio.sleep(max(0.0, started + duration * tick / ticks - time.monotonic()))
        now = time.monotonic()
        rate = (totals.window_events - last_events) / max(now - last_time, 1e-9)
        last_events, last_time = totals.window_events, now
        recent = sorted(totals.latencies_us[-20000:])
        p99 = recent[int(len(recent) * 0.99)] / 1000 if recent else float("nan")
        logger.info(
            "  [%s] t=%4.1fs open=%d events/s=%s p99~%.1fms reconnects=%d errors=%d",
            client.args.name,
            now - started,
            len(client.connections),
            f"{rate:,.0f}",
            p99,
            totals.reconnects,
            totals.errors,
        )
    await asyncio.sleep(max(0.0, end - time.monotonic()))
    totals.recording = False
    elapsed = time.monotonic() - started
    _emit({"mark": "end"})
    return elapsed


async def _wait_for_go(timeout: float) -> None:
    """Wait for a line on stdin: the orchestrator starts every client's window together."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    try:
        async with asyncio.timeout(timeout):
            await reader.readline()
    finally:
        transport.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    client = Client(args)
    connect_s = await client.connect_all()
    _emit({"ready": {"connected": len(client.connections), "connect_s": connect_s}})
    if args.go_on_stdin:
        await _wait_for_go(args.go_timeout)
    await asyncio.sleep(args.warmup)
    cpu_before = _cpu()
    window_s = await _window(client, args.duration, args.progress)
    cpu_s = _cpu() - cpu_before
    await asyncio.sleep(args.linger)  # the orchestrator samples the server meanwhile
    totals = client.totals
    result = {
        "clients": args.clients,
        "connected": len(client.connections),
        "connect_s": connect_s,
        "window_s": window_s,
        "events": totals.window_events,
        "deliveries_per_s": totals.window_events / window_s,
        "latency_ms": latency_summary(totals.latencies_us),
        "heartbeats": totals.heartbeats,
        "with_heartbeat": sum(1 for c in client.connections if c.window_heartbeats > 0),
        "reconnects": totals.reconnects,
        "errors": totals.errors,
        "error_samples": totals.error_samples,
        "client_cpu": cpu_s / window_s,
    }
    client.close()
    return result


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.sseclient", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/v1/sessions/{session}/stream")
    parser.add_argument("--prefix", default="bench-")
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--offset", type=int, default=0, help="index of this process's first")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--progress", type=float, default=2.0)
    parser.add_argument("--connect-timeout", type=float, default=60.0)
    parser.add_argument("--connect-concurrency", type=int, default=200)
    parser.add_argument("--reconnect-delay", type=float, default=0.5)
    parser.add_argument("--max-reconnects", type=int, default=1000)
    parser.add_argument("--name", default="client")
    parser.add_argument(
        "--latency",
        choices=["every", "first"],
        default="every",
        help="time every event, or only the oldest of each socket read (cheaper, conservative)",
    )
    parser.add_argument("--linger", type=float, default=1.0, help="seconds held after the window")
    parser.add_argument("--go-on-stdin", action="store_true", help="start on a line of stdin")
    parser.add_argument("--go-timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 3600 or args.clients < 0 or args.sessions < 1:
        parser.error("need 0 < duration <= 3600, clients >= 0 and sessions >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    args = parse(argv)
    raise_nofile()
    result = uvloop.run(run(args))
    _emit({"result": result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
