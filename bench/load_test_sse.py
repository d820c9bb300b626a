"""load_test_sse: real uvicorn in one process, real TCP clients in another, a measured window.

`measure(backends, load)` runs one configuration end to end:
1. a fresh, migrated database; the server process (ours via bench/serve_ours.py, the raw
   ceiling via bench/raw_server.py, or the seed's peer via bench/seed_peer.py);
2. the client process(es) of bench/sseclient.py, which connect every client and say ready;
3. for database-fed runs, the writer process of bench/writer.py;
4. one "go" to every client: after the warm-up each records a window of `duration` seconds,
   while this process samples the server's CPU, RSS and /bench-stats at both ends.
Delivered events/s and latency (writer's `time.time_ns()` to client receipt) come from the
clients; CPU per delivery and database reads per second from the server's counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from bench import procs
from bench.backends import Backends, database
from bench.profile import record
from bench.stats import ratio

logger = logging.getLogger(__name__)

SERVERS = {"ours": "bench.serve_ours", "raw": "bench.raw_server", "seed": "bench.seed_peer"}


@dataclasses.dataclass(frozen=True)
class Load:
    clients: int = 100
    sessions: int = 10
    rate: float = 1000.0  # events/s over all sessions; each goes to every subscriber
    duration: float = 10.0
    warmup: float = 2.0
    server: str = "ours"  # ours | raw | seed
    feed: str = "synthetic"  # ours: synthetic, or auto | change_stream | poll (database-fed)
    heartbeat: float | None = None
    client_procs: int = 1
    latency: str = "every"  # every | first: time each event, or the oldest of each read
    settle: float = 1.0  # seconds after the server starts, before its idle RSS is taken
    linger: float = 1.0  # seconds clients hold their connections after the window
    workers: int = 1  # ours: API processes on the one port (app serve --workers)
    direct: bool = True  # ours: the hub's direct writes; False = every frame through ASGI send

    @property
    def db_fed(self) -> bool:
        return self.server == "seed" or (self.server == "ours" and self.feed != "synthetic")

    @property
    def label(self) -> str:
        name = f"ours/{self.feed}" if self.server == "ours" else self.server
        if self.server == "ours" and (self.workers > 1 or not self.direct):
            name += f" x{self.workers}" + ("" if self.direct else " (ASGI send)")
        return f"{name} {self.clients} clients, {self.sessions} sessions, {self.rate:g} events/s"


def _server_args(load: Load) -> list[str]:
    run_for = ["--run-for", str(load.warmup + load.duration + 30)]
    expect = ["--expect", str(load.clients), *run_for]
    if load.server == "ours":
        rate = 0.0 if load.db_fed else load.rate
        mode = ["--workers", str(load.workers)] + ([] if load.direct else ["--no-direct"])
        return ["--feed", load.feed, "--rate", str(rate), *mode, *expect]
    if load.server == "raw":
        return ["--rate", str(load.rate), *expect]
    return []


@dataclasses.dataclass
class Snapshot:
    at: float
    cpu_s: float
    rss: int
    stats: dict[str, Any]
    mongo_cpu_s: float | None


async def _snapshot(http: httpx.AsyncClient, pid: int, mongo_pid: int | None) -> Snapshot:
    usage = procs.tree_usage(pid)  # with `--workers N`, the supervisor and its children
    try:
        stats = (await http.get("/bench-stats")).json()
    except (httpx.HTTPError, ValueError) as exc:
        logger.warning("no /bench-stats: %s", exc)
        stats = {}
    mongo = procs.usage(mongo_pid).cpu_s if mongo_pid is not None else None
    return Snapshot(time.monotonic(), usage.cpu_s, usage.rss, stats, mongo)


def _client_args(load: Load, port: int, index: int) -> list[str]:
    share = load.clients // load.client_procs + (index < load.clients % load.client_procs)
    offset = sum(
        load.clients // load.client_procs + (i < load.clients % load.client_procs)
        for i in range(index)
    )
    path = "/v1/sessions/{session}/stream"
    return [
        *("--port", str(port), "--clients", str(share), "--offset", str(offset)),
        *("--sessions", str(load.sessions), "--path", path, "--name", f"client{index}"),
        *("--warmup", str(load.warmup), "--duration", str(load.duration)),
        *("--connect-timeout", "60", "--go-on-stdin", "--latency", load.latency),
        *("--linger", str(load.linger)),
    ]


@contextlib.asynccontextmanager
async def _writer(backends: Backends, db: str, load: Load) -> AsyncIterator[procs.Child | None]:
    if not load.db_fed:
        yield None
        return
    args = ["--sessions", str(load.sessions), "--rate", str(load.rate)]
    args += ["--duration", str(load.warmup + load.duration + 1)]
    writer = await procs.spawn("writer", "bench.writer", args, backends.env(db))
    try:
        # Its window starts once it writes: on a loaded machine its start-up alone can outlast
        # a short measured window.
        await writer.expect("ready", 60)
        yield writer
    finally:
        await procs.stop(writer, timeout=40)


async def measure(backends: Backends, load: Load, *, profile: Path | None = None) -> dict[str, Any]:
    """One run of `load`; its figures (see the module docstring)."""
    logger.info("load: %s for %gs", load.label, load.duration)
    extra = {} if load.heartbeat is None else {"SSE_HEARTBEAT": str(load.heartbeat)}
    async with database(backends, load.server) as (db, _):
        env = backends.env(db, **extra)
        module = SERVERS[load.server]
        async with procs.running(load.server, module, _server_args(load), env) as (server, up):
            await asyncio.sleep(load.settle)  # let start-up work settle before the idle RSS
            idle_rss = procs.tree_usage(server.pid).rss
            clients = [
                await procs.spawn(
                    f"client{i}",
                    "bench.sseclient",
                    _client_args(load, up["port"], i),
                    env,
                    stdin=True,
                )
                for i in range(load.client_procs)
            ]
            try:
                return await _window(
                    backends, db, load, server, up["port"], clients, profile, idle_rss
                )
            finally:
                for client in clients:
                    await procs.stop(client)


async def _window(
    backends: Backends,
    db: str,
    load: Load,
    server: procs.Child,
    port: int,
    clients: list[procs.Child],
    profile: Path | None,
    idle_rss: int,
) -> dict[str, Any]:
    connect_limit = 90 + load.clients / 50
    ready = [(await c.expect("ready", connect_limit))["ready"] for c in clients]
    connected = sum(r["connected"] for r in ready)
    logger.info(
        "  %d/%d connected in %.1fs", connected, load.clients, max(r["connect_s"] for r in ready)
    )
    base = f"http://127.0.0.1:{port}"
    async with (
        httpx.AsyncClient(base_url=base, timeout=10) as http,
        _writer(backends, db, load) as writer,
    ):
        for client in clients:
            client.send("go")
        await clients[0].expect("mark", load.warmup + 30)
        before = await _snapshot(http, server.pid, backends.mongo_pid)
        profiling = None
        if profile is not None:
            profiling = asyncio.create_task(record(server.pid, load.duration - 0.5, profile))
        for client in clients:
            await client.expect("mark", load.duration + 30)
        after = await _snapshot(http, server.pid, backends.mongo_pid)
        results = [(await c.expect("result", 60))["result"] for c in clients]
        if profiling is not None:
            await profiling
        written = None
        if writer is not None:
            with contextlib.suppress(TimeoutError, procs.ChildFailed):
                written = (await writer.expect("result", load.warmup + load.duration + 40))[
                    "result"
                ]
    return _figures(load, before, after, results, written, idle_rss)


def _number(value: float | None) -> float:
    """JSON has no NaN: orjson writes it as null."""
    return float("nan") if value is None else float(value)


def _figures(
    load: Load,
    before: Snapshot,
    after: Snapshot,
    results: list[dict[str, Any]],
    written: dict[str, Any] | None,
    idle_rss: int,
) -> dict[str, Any]:
    elapsed = after.at - before.at
    events = sum(r["events"] for r in results)
    cpu = after.cpu_s - before.cpu_s
    latency = {
        key: max(_number(r["latency_ms"][key]) for r in results)
        for key in ("p50", "p95", "p99", "max")
    }

    def per_s(key: str) -> float:
        if key not in after.stats or key not in before.stats:
            return float("nan")
        return (after.stats[key] - before.stats[key]) / elapsed

    figures: dict[str, Any] = {
        "label": load.label,
        "clients": load.clients,
        "connected": sum(r["connected"] for r in results),
        "deliveries_per_s": sum(r["deliveries_per_s"] for r in results),
        "latency_ms": latency,
        "latency_samples": sum(r["latency_ms"]["n"] for r in results),
        "server_cpu": cpu / elapsed,
        "server_rss_mb": after.rss / 2**20,
        "server_rss_idle_mb": idle_rss / 2**20,
        # psutil's CPU times tick every 10 ms: below a few ticks the quotient is noise.
        "cpu_us_per_delivery": ratio(cpu, events) * 1e6 if cpu >= 0.03 else float("nan"),
        "db_reads_per_s": per_s("reads"),
        "db_queries_per_s": per_s("queries"),
        "db_getmores_per_s": per_s("getmores"),
        "generated_per_s": per_s("generated"),
        "client_cpu": sum(r["client_cpu"] for r in results),
        "reconnects": sum(r["reconnects"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "error_samples": [s for r in results for s in r["error_samples"]][:5],
        "with_heartbeat": sum(r["with_heartbeat"] for r in results),
        "subscribers": after.stats.get("subscribers"),
        "load_average": os.getloadavg()[0],  # the machine's, over the last minute
        "commands": after.stats.get("commands", {}),
    }
    if after.mongo_cpu_s is not None and before.mongo_cpu_s is not None:
        figures["mongo_cpu"] = (after.mongo_cpu_s - before.mongo_cpu_s) / elapsed
    if written is not None:
        figures["written_per_s"] = written["rate"]
        figures["write_errors"] = written["write_errors"]
    if figures["errors"]:
        logger.warning("  errors: %s", figures["error_samples"])
    logger.info(
        "  -> %s deliveries/s, p50 %.1f ms, p99 %.1f ms, server CPU %.0f%%, %.1f us/delivery,"
        " db reads %.1f/s",
        f"{figures['deliveries_per_s']:,.0f}",
        latency["p50"],
        latency["p99"],
        figures["server_cpu"] * 100,
        figures["cpu_us_per_delivery"],
        figures["db_reads_per_s"],
    )
    return figures
