"""benchmark_events: write throughput and round trips per event, and query latency.

Writes: N events of one chatty agent run (emitting as fast as it can), once with one
`EventWriter.append` per event (what an agent without coalescing, or a client POSTing one
event at a time, costs) and once through the worker's `Emitter` (worker/runtime.py), which
gathers events for EMIT_FLUSH_INTERVAL or EMIT_FLUSH_EVENTS, whichever comes first. Round
trips are counted with PyMongo command monitoring. How much the Emitter gathers depends on
how long a write takes (events pile up meanwhile), so it is also run against a stand-in
writer whose append takes two 1 ms round trips, as MongoDB on a LAN would, at several paces.

Queries: p50/p95/p99 of each of the seed's query patterns, as `app.store.history.History`
runs them (and the seed's own `timestamp > last` poll for comparison).

On the embedded stand-in inserts cost O(collection size), so N stays small (500 by default)
and its rates and latencies say little about MongoDB; its round-trip counts hold anywhere.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from app.mongo import Collections, connect
from app.settings import Settings
from app.store.events import EventWriter, NewEvent
from app.store.history import History
from bench.backends import Backends, database
from bench.mongocount import CommandCounter
from bench.stats import latency_summary
from bench.synthetic import DELTA
from worker.runtime import Emitter

logger = logging.getLogger(__name__)

TRACES = 20


def _event(prefix: str, i: int) -> NewEvent:
    data = {"sent_ns": time.time_ns(), "delta": DELTA}
    return NewEvent("message.delta", data, trace_id=f"trace-{i % TRACES}", event_id=f"{prefix}.{i}")


async def _uncoalesced(writer: EventWriter, session: str, n: int, pause: float) -> None:
    for i in range(n):
        await writer.append(session, [_event(session, i)])
        if pause:
            await asyncio.sleep(pause)


async def _coalesced(
    writer: EventWriter, session: str, n: int, pause: float, settings: Settings
) -> None:
    async with Emitter(
        writer,
        session,
        interval=settings.emit_flush_interval,
        max_events=settings.emit_flush_events,
    ) as emitter:
        for i in range(n):
            await emitter.emit(_event(session, i))
            if pause:
                await asyncio.sleep(pause)


async def _writes(writer: EventWriter, counter: CommandCounter, n: int) -> list[dict[str, Any]]:
    """An agent emitting n events as fast as it can, without and with coalescing."""
    rows: list[dict[str, Any]] = []
    settings = Settings()
    for mode in ("one append per event", "coalesced (Emitter)"):
        session = f"w{len(rows)}"
        logger.info("  writes: %d events, %s", n, mode)
        before, started = counter.total(), time.perf_counter()
        if mode.startswith("one"):
            await _uncoalesced(writer, session, n, 0.0)
        else:
            await _coalesced(writer, session, n, 0.0, settings)
        elapsed = time.perf_counter() - started
        trips = counter.total() - before
        rows.append(
            {
                "mode": mode,
                "session": session,
                "events": n,
                "events_per_s": n / elapsed,
                "round_trips": trips,
                "round_trips_per_event": trips / n,
            }
        )
    return rows


class _SlowWriter:
    """Stands in for EventWriter with a database whose append takes two round trips."""

    def __init__(self, round_trip: float) -> None:
        self.round_trip = round_trip
        self.appends = 0

    async def append(self, session_id: str, events: list[NewEvent]) -> list[Any]:
        await asyncio.sleep(2 * self.round_trip)
        self.appends += 1
        return []


async def _simulated(n: int, round_trip_ms: float) -> list[dict[str, Any]]:
    """The Emitter's batching when a round trip takes `round_trip_ms`, at several agent paces."""
    rows = []
    settings = Settings()
    for pace, pause, count in (
        ("as fast as it can", 0.0, n),
        ("1 event/ms", 0.001, n),
        ("1 event/10 ms (an LLM token stream)", 0.010, max(1, n // 6)),
    ):
        slow = _SlowWriter(round_trip_ms / 1000)
        logger.info("  emitter, %.0f ms round trips: %d events, %s", round_trip_ms, count, pace)
        started = time.perf_counter()
        await _coalesced(cast("EventWriter", slow), "sim", count, pause, settings)
        elapsed = time.perf_counter() - started
        per_event = 2 * slow.appends / count
        rows.append(
            {
                "pace": pace,
                "events": count,
                "round_trip_ms": round_trip_ms,
                "events_per_append": count / slow.appends,
                "round_trips_per_event": per_event,
                "reduction": 2.0 / per_event,
                "events_per_s": count / elapsed,
            }
        )
    return rows


async def _timed(times: int, query: Callable[[], Awaitable[object]]) -> dict[str, float]:
    samples: list[int] = []
    for _ in range(times):
        started = time.perf_counter_ns()
        await query()
        samples.append((time.perf_counter_ns() - started) // 1000)
    return latency_summary(samples)


async def _queries(
    collections: Collections, sessions: list[str], n: int, times: int
) -> list[dict[str, Any]]:
    history = History(collections)
    rng = random.Random(6)
    docs = await collections.events.find({"session_id": sessions[0]}, {"_id": 0}).to_list()
    stamps = [doc["timestamp"] for doc in docs]
    ids = [doc["event_id"] for doc in docs]
    positions = dict.fromkeys([*sessions, *(f"idle{i}" for i in range(10 - len(sessions)))], 0)
    for session in sessions:
        positions[session] = rng.randrange(n)

    def seed_poll() -> Awaitable[list[dict[str, Any]]]:
        since = rng.choice(stamps)
        cursor = collections.events.find(
            {"session_id": sessions[0], "timestamp": {"$gt": since}}, {"_id": 0}
        )
        return cursor.sort("timestamp", 1).limit(100).to_list()

    patterns: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        (
            "by session from a position (100)",
            lambda: history.after(sessions[0], rng.randrange(n), 100),
        ),
        (
            "since_timestamp -> position",
            lambda: history.position_before(sessions[0], rng.choice(stamps)),
        ),
        ("by event_id", lambda: history.by_event_id(rng.choice(ids))),
        ("by trace_id (100)", lambda: history.by_trace(f"trace-{rng.randrange(TRACES)}", 100)),
        ("poll: $or over 10 sessions", lambda: history.poll(positions, 100)),
        ("seed poll: timestamp > last (100)", seed_poll),
    ]
    rows = []
    for name, query in patterns:
        logger.info("  queries: %s x%d", name, times)
        rows.append({"pattern": name, **await _timed(times, query)})
    return rows


async def benchmark_events(
    backends: Backends,
    events: int,
    *,
    queries: int = 100,
    round_trip_ms: float = 1.0,
    simulated: int = 2000,
) -> dict[str, Any]:
    logger.info("benchmark_events: %d events per mode, %d queries per pattern", events, queries)
    counter = CommandCounter()
    async with database(backends, "events") as (db, _):
        client = connect(backends.mongo_url, event_listeners=[counter])
        try:
            collections = Collections.of(client, db)
            writer = EventWriter(collections)
            writes = await _writes(writer, counter, events)
            stored = await collections.events.count_documents({})
            sessions = [row["session"] for row in writes][:2]
            reads = await _queries(collections, sessions, events, queries)
        finally:
            await client.close()
    paced = await _simulated(simulated, round_trip_ms)
    settings = Settings()
    return {
        "events": events,
        "stored": stored,
        "flush_interval": settings.emit_flush_interval,
        "flush_events": settings.emit_flush_events,
        "writes": writes,
        "simulated": paced,
        "queries": reads,
        "at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
