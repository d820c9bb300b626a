"""embedded_growth: the embedded MongoDB default as its data grows, through the HTTP API.

For each engine (ours, `embedded.engine`, and mongoeco's unmodified memory engine behind the
same wire server), an embedded server and an API process start empty. The database is grown
with 1,000-event sessions (an agent run's worth each) to each size, and at each size:

- single write: `POST /v1/sessions/{id}/events` of one event, median of `SINGLE` posts;
- batch write: a POST of 1,000 events, median of `BATCHES` posts;
- history page: `GET .../events?after=<token>&limit=100` at random points of a stored session;
- stream catch-up: `GET .../stream` of a stored 1,000-event session, until the 1,000th event.

The unmodified engine runs only at the sizes in `--reference-sizes` (1k by default): its
writes grow with the collection, so its larger sizes would take hours.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from bench.procs import child_env, spawn, stop, usage
from bench.stats import median
from embedded.redis import free_port

logger = logging.getLogger(__name__)

SESSION = 1000
SINGLE = 30
BATCHES = 3
PAGES = 20
CATCH_UPS = 3
TIMEOUT = 120.0
TARGETS = {"single_ms": 5.0, "batch_ms": 1000.0, "page_ms": 20.0, "catch_up_ms": 1000.0}


def _events(n: int, tag: str) -> list[dict[str, Any]]:
    return [
        {"type": "message.delta", "data": {"message_id": tag, "delta": f"token {i} " * 8}}
        for i in range(n)
    ]


@contextlib.asynccontextmanager
async def _stack(engine: str, redis_url: str) -> AsyncIterator[tuple[str, list[int]]]:
    mongo = await spawn("mongo", "embedded.mongo", ["--port", "0", "--engine", engine], child_env())
    try:
        uri = (await mongo.expect("uri", 60))["uri"]
        port = free_port()
        env = child_env(
            {"MONGO_URL": uri, "REDIS_URL": redis_url, "PORT": str(port), "AUTH_MODE": "off"}
        )
        api = await spawn("api", "app", ["serve"], env)
        try:
            url = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(timeout=5) as client:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    with contextlib.suppress(httpx.HTTPError):
                        if (await client.get(f"{url}/readyz")).status_code == 200:
                            break
                    await asyncio.sleep(0.2)
            yield url, [mongo.pid, api.pid]
        finally:
            await stop(api)
    finally:
        await stop(mongo)


async def _post(client: httpx.AsyncClient, url: str, session: str, events: list[Any]) -> float:
    body = {"events": events} if len(events) > 1 else events[0]
    started = time.perf_counter()
    answer = await client.post(f"{url}/v1/sessions/{session}/events", json=body)
    elapsed = (time.perf_counter() - started) * 1000
    answer.raise_for_status()
    return elapsed


async def _catch_up(client: httpx.AsyncClient, url: str, session: str) -> float:
    started = time.perf_counter()
    seen = 0
    async with client.stream("GET", f"{url}/v1/sessions/{session}/stream") as response:
        async for line in response.aiter_lines():
            if line.startswith("id:"):
                seen += 1
                if seen == SESSION:
                    break
    return (time.perf_counter() - started) * 1000


async def _history_page(client: httpx.AsyncClient, url: str, session: str) -> float:
    first = (await client.get(f"{url}/v1/sessions/{session}/events?limit=1")).json()
    tag = first["events"][0]["id"].split(".")[1]
    after = f"{random.randrange(SESSION - 100)}.{tag}"
    started = time.perf_counter()
    page = await client.get(f"{url}/v1/sessions/{session}/events?after={after}&limit=100")
    elapsed = (time.perf_counter() - started) * 1000
    page.raise_for_status()
    assert len(page.json()["events"]) == 100
    return elapsed


async def _measure(
    client: httpx.AsyncClient, url: str, size: int, grown: list[str], pids: list[int]
) -> dict[str, Any]:
    """Each figure's median wall time, and the CPU time the API and MongoDB processes spent
    per operation (which a busy machine does not inflate as it does wall time)."""
    session = grown[len(grown) // 2]
    plan = {
        "single_ms": (SINGLE, lambda i: _post(client, url, f"single-{size}", _events(1, "s"))),
        "batch_ms": (
            BATCHES,
            lambda i: _post(client, url, f"batch-{size}-{i}", _events(SESSION, "b")),
        ),
        "page_ms": (PAGES, lambda i: _history_page(client, url, session)),
        "catch_up_ms": (CATCH_UPS, lambda i: _catch_up(client, url, session)),
    }
    row: dict[str, Any] = {}
    for key, (times, step) in plan.items():
        try:
            before = sum(usage(pid).cpu_s for pid in pids)
            row[key] = median([await step(i) for i in range(times)])
            cpu = sum(usage(pid).cpu_s for pid in pids) - before
            row[key.replace("_ms", "_cpu_ms")] = cpu / times * 1000
        except (httpx.HTTPError, AssertionError, KeyError) as exc:
            logger.warning("  %s at %d: %r", key, size, exc)
            row.setdefault("failed", []).append(key)
    return row


async def _engine_run(
    engine: str, sizes: list[int], redis_url: str, grow_by: int
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    async with (
        _stack(engine, redis_url) as (url, pids),
        httpx.AsyncClient(timeout=TIMEOUT) as client,
    ):
        stored, grown = 0, []
        for size in sizes:
            started = time.perf_counter()
            while stored < size:
                session = f"grow-{len(grown)}"
                for _ in range(SESSION // grow_by):
                    await _post(client, url, session, _events(grow_by, session))
                grown.append(session)
                stored += SESSION
            grew = time.perf_counter() - started
            logger.info("  %s: grew to %d events in %.0f s", engine, stored, grew)
            row: dict[str, Any] = {"engine": engine, "size": size, "grow_s": grew}
            row |= await _measure(client, url, size, grown, pids)
            stored += SINGLE + BATCHES * SESSION
            rows.append(row)
            logger.info("  %s at %d: %s", engine, size, row)
    return rows


async def embedded_growth(
    redis_url: str, sizes: list[int], reference_sizes: list[int]
) -> dict[str, Any]:
    rows = await _engine_run("indexed", sizes, redis_url, grow_by=SESSION)
    if reference_sizes:  # in posts of 100 events: one of 1,000 already stalls it
        rows += await _engine_run("mongoeco", reference_sizes, redis_url, grow_by=100)
    load = os.getloadavg()[1]  # the machine's load over the last 5 minutes
    return {"rows": rows, "targets": TARGETS, "sizes": sizes, "load": load, "cpus": os.cpu_count()}
