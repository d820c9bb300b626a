"""storm: thousands of SSE clients arriving within a second at one API process with a cap.

`python -m bench storm` (part of `./dev bench`): our server (bench/serve_ours.py, idle
in-process feed) with SSE_MAX_CONNECTIONS=2000, and a client process (`python -m bench.storm
--port P --clients 4000 --within 1`) that opens 4,000 streams spread over one second. The
orchestrator probes `/healthz` every 10 ms from its own process during the storm. Measured:
how many streams were accepted (200) and refused (503 `over_capacity`), how fast each kind of
answer came, the accept rate, `/healthz` latency during the storm, and how long after the
clients leave every stream slot and task is released.

The client functions are also used, with a smaller count, by tests/limits/test_storm.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import sys
import time
from typing import Any

import httpx
import orjson

from bench import procs
from bench.backends import Backends, database
from bench.stats import latency_summary

logger = logging.getLogger(__name__)

READ_TIMEOUT = 30.0


@dataclasses.dataclass
class Arrival:
    status: int | None  # None: no answer (refused, reset or timed out)
    answer_s: float  # connect to status line
    writer: asyncio.StreamWriter | None


async def arrive(port: int, path: str) -> Arrival:
    """One client: connect, ask for a stream, read the status line; keep the socket if 200."""
    started = time.monotonic()
    writer = None
    try:
        async with asyncio.timeout(READ_TIMEOUT):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET {path} HTTP/1.1\r\nhost: storm\r\n\r\n".encode())
            line = await reader.readline()
        status = int(line.split()[1])
    except (OSError, TimeoutError, ValueError, IndexError):
        if writer is not None:
            writer.close()
        return Arrival(None, time.monotonic() - started, None)
    if status != 200:
        writer.close()
        writer = None
    return Arrival(status, time.monotonic() - started, writer)


async def storm(port: int, clients: int, within: float, sessions: int = 100) -> list[Arrival]:
    """`clients` arrivals spread evenly over `within` seconds (0: all at once)."""
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def one(i: int) -> Arrival:
        delay = start + within * i / clients - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)  # the arrival schedule of the scenario
        return await arrive(port, f"/v1/sessions/storm{i % sessions}/stream")

    return await asyncio.gather(*(one(i) for i in range(clients)))


def leave(arrivals: list[Arrival]) -> None:
    for arrival in arrivals:
        if arrival.writer is not None:
            arrival.writer.close()


def summary(arrivals: list[Arrival], elapsed: float) -> dict[str, Any]:
    def ms(kind: list[Arrival]) -> dict[str, float]:
        return latency_summary([round(a.answer_s * 1e6) for a in kind]) if kind else {}

    accepted = [a for a in arrivals if a.status == 200]
    refused = [a for a in arrivals if a.status == 503]
    return {
        "clients": len(arrivals),
        "accepted": len(accepted),
        "over_capacity": len(refused),
        "other": len(arrivals) - len(accepted) - len(refused),
        "elapsed_s": elapsed,
        "accepted_ms": ms(accepted),
        "refused_ms": ms(refused),
        "answers_per_s": (len(accepted) + len(refused)) / elapsed if elapsed else 0.0,
    }


class HealthProbe:
    """GET /healthz every `interval` seconds until stopped; latencies in microseconds."""

    def __init__(self, url: str, interval: float = 0.01) -> None:
        self._url = url
        self._interval = interval
        self._stop = asyncio.Event()
        self.latencies_us: list[int] = []
        self.failures = 0

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=10.0) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    response = await client.get(f"{self._url}/healthz")
                    response.raise_for_status()
                except httpx.HTTPError:
                    self.failures += 1
                else:
                    self.latencies_us.append(round((time.monotonic() - started) * 1e6))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._interval):
                        await self._stop.wait()

    def stop(self) -> None:
        self._stop.set()


async def open_streams(url: str) -> float:
    async with httpx.AsyncClient(timeout=10.0) as client:
        text = (await client.get(f"{url}/metrics")).text
    for line in text.splitlines():
        if line.startswith("agentstream_sse_connections "):
            return float(line.split()[1])
    return 0.0


async def _bench_stats(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10.0) as client:
        stats: dict[str, Any] = (await client.get(f"{url}/bench-stats")).json()
    return stats


async def run_storm(
    backends: Backends, *, clients: int = 4000, cap: int = 2000, within: float = 1.0
) -> dict[str, Any]:
    """The part: server, client process, probe; see the module docstring."""
    soft, hard = procs.raise_nofile()
    logger.info(
        "storm: %d clients within %gs, cap %d (nofile %d/%d)", clients, within, cap, soft, hard
    )
    extra = {
        "SSE_MAX_CONNECTIONS": str(cap),
        "SSE_MAX_CONNECTIONS_PER_SUBJECT": str(clients),
        "SSE_HEARTBEAT": "5",
    }
    async with database(backends, "storm") as (db, _):
        env = backends.env(db, **extra)
        async with procs.running("server", "bench.serve_ours", ["--feed", "synthetic"], env) as (
            _server,
            up,
        ):
            url = f"http://127.0.0.1:{up['port']}"
            tasks_before = (await _bench_stats(url)).get("tasks")
            probe = HealthProbe(url)
            probing = asyncio.create_task(probe.run())
            args = ["--port", str(up["port"]), "--clients", str(clients), "--within", str(within)]
            client = await procs.spawn(
                "storm-client", "bench.storm", args, procs.child_env(), stdin=True
            )
            try:
                result = (await client.expect("result", 180))["result"]
                during = list(probe.latencies_us)
                held = await open_streams(url)
                client.send("leave")
                left = time.monotonic()
                await client.expect("left", 60)
                while await open_streams(url) > 0 and time.monotonic() - left < 60:
                    await asyncio.sleep(0.05)
                released_s = time.monotonic() - left
                remaining = await open_streams(url)
                tasks_after = (await _bench_stats(url)).get("tasks")
            finally:
                probe.stop()
                await probing
                await procs.stop(client)
    return {
        **result,
        "cap": cap,
        "within_s": within,
        "held_by_server": held,
        "healthz_ms": latency_summary(during) if during else {},
        "healthz_probes": len(during),
        "healthz_failures": probe.failures,
        "released_s": released_s,
        "open_after": remaining,
        "tasks_before": tasks_before,
        "tasks_after": tasks_after,
    }


async def _client(args: argparse.Namespace) -> None:
    started = time.monotonic()
    arrivals = await storm(args.port, args.clients, args.within)
    result = summary(arrivals, time.monotonic() - started)
    print(orjson.dumps({"result": result}).decode(), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    async with asyncio.timeout(args.hold):
        await reader.readline()  # "leave"
    leave(arrivals)
    print(orjson.dumps({"left": True}).decode(), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.storm", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clients", type=int, default=4000)
    parser.add_argument("--within", type=float, default=1.0)
    parser.add_argument("--hold", type=float, default=120.0, help="longest wait for 'leave'")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    procs.raise_nofile()
    import uvloop

    asyncio.run(_client(args), loop_factory=uvloop.new_event_loop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
