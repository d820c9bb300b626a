"""The agent runtime: the coalescing emitter (counted in real MongoDB round trips) and the
context agents use."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from pymongo import monitoring

from app.errors import Conflict, PayloadTooLarge
from app.jobs import arq_pool, enqueue, run_args
from app.mongo import Collections, connect
from app.settings import Settings
from app.store.events import EventWriter, NewEvent
from app.store.messages import MessageStore
from support.worker import burst, session_events, types, wait_status
from worker.runtime import AgentContext, Emitter


class CommandCounter(monitoring.CommandListener):
    """Counts the commands a client sends, per (command, collection)."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        self.counts[(event.command_name, str(target))] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def inserts(self) -> int:
        return self.counts[("insert", "events")]

    def round_trips(self) -> int:
        ignored = {"ping", "hello", "ismaster", "isMaster", "endSessions"}
        return sum(n for (name, _), n in self.counts.items() if name not in ignored)


@pytest.fixture
async def counted(
    settings: Settings, collections: Collections
) -> AsyncIterator[tuple[Collections, CommandCounter]]:
    """The test's (migrated) database through a client whose commands are counted."""
    counter = CommandCounter()
    assert settings.mongo_url is not None
    client = connect(settings.mongo_url.get(), event_listeners=[counter])
    try:
        yield Collections.of(client, settings.mongo_db), counter
    finally:
        await client.close()


def events(n: int, run: str = "r") -> list[NewEvent]:
    return [NewEvent("message.delta", {"delta": str(i)}, "t", f"{run}.{i}") for i in range(n)]


async def emit_all(emitter: Emitter, batch: list[NewEvent]) -> None:
    async with emitter:
        for event in batch:
            await emitter.emit(event)


async def test_the_emitter_coalesces_rapid_events(
    counted: tuple[Collections, CommandCounter],
) -> None:
    collections, counter = counted
    writer = EventWriter(collections)
    emitter = Emitter(writer, "fast", interval=0.005, max_events=64)
    await emit_all(emitter, events(200))
    stored = await session_events(collections, "fast")
    assert [e["event_id"] for e in stored] == [f"r.{i}" for i in range(200)]
    assert [e["seq"] for e in stored] == list(range(1, 201))  # one position each, in order
    assert (emitter.appends, counter.inserts()) == (4, 4)  # 64 + 64 + 64 + 8

    counter.counts.clear()
    one_by_one = Emitter(writer, "slow", interval=0.005, max_events=1)
    await emit_all(one_by_one, events(200, "s"))
    assert (one_by_one.appends, counter.inserts()) == (200, 200)


async def test_the_emitter_writes_once_per_interval_for_a_paced_agent(
    counted: tuple[Collections, CommandCounter],
) -> None:
    collections, counter = counted
    emitter = Emitter(EventWriter(collections), "paced", interval=0.05, max_events=1000)
    async with emitter:
        for event in events(40):
            await emitter.emit(event)
            await asyncio.sleep(0.002)  # the agent's own pace: ~100 ms in all
    assert emitter.events == 40
    assert counter.inserts() == emitter.appends
    assert 2 <= emitter.appends <= 8, emitter.appends


async def test_the_emitter_drops_events_an_earlier_attempt_wrote(collections: Collections) -> None:
    writer = EventWriter(collections)
    await emit_all(Emitter(writer, "retry", interval=0, max_events=64), events(3))
    second = Emitter(writer, "retry", interval=0, max_events=64, skip={"r.0", "r.1", "r.2"})
    await emit_all(second, events(5))
    stored = await session_events(collections, "retry")
    assert [e["event_id"] for e in stored] == [f"r.{i}" for i in range(5)]
    assert second.events == 2
    assert not await collections.events.find_one({"void": True})  # no wasted positions


async def test_a_failed_write_reaches_the_agent(collections: Collections) -> None:
    writer = EventWriter(collections)
    await writer.append("other", [NewEvent("x", {}, None, "taken")])
    emitter = Emitter(writer, "mine", interval=0, max_events=1)

    async def agent() -> None:
        async with emitter:
            await emitter.emit(NewEvent("x", {}, None, "taken"))
            with pytest.raises(Conflict):
                await emitter.flush()
            with pytest.raises(Conflict):
                await emitter.emit(NewEvent("x", {}, None, "later"))

    with pytest.raises(Conflict):  # and closing the emitter says so again
        await agent()


async def test_a_run_costs_few_round_trips(
    settings: Settings, collections: Collections, capsys: pytest.CaptureFixture[str]
) -> None:
    """A whole echo run of 200 one-character deltas, with and without coalescing."""
    assert settings.redis_url is not None
    figures = {}
    for label, flush_events in (("coalesced", 64), ("one insert per event", 1)):
        tuned = dataclasses.replace(settings, emit_flush_events=flush_events)
        counter = CommandCounter()
        redis = await arq_pool(tuned.redis_url.get())  # type: ignore[union-attr]
        try:
            run_id = f"rt{flush_events}"
            await enqueue(redis, run_args(run_id, run_id, "echo", {"text": "x" * 200}))
        finally:
            await redis.aclose()
        await burst(tuned, mongo_listeners=[counter])
        await wait_status(collections, run_id, "succeeded", timeout=5)
        stored = await session_events(collections, run_id)
        assert len(stored) == 204  # queued, started, 200 deltas, message and run completed
        figures[label] = (counter.inserts(), counter.round_trips(), len(stored))
    with capsys.disabled():
        for label, (inserts, trips, count) in figures.items():
            per_event = trips / count
            print(f"\n{label}: {count} events, {inserts} inserts, {trips} round trips", end="")
            print(f" ({per_event:.2f} per event)")
    assert figures["coalesced"][0] <= 8
    assert figures["one insert per event"][0] >= 200


def context(
    settings: Settings, collections: Collections, emitter: Emitter, run_id: str = "ctx"
) -> AgentContext:
    return AgentContext(
        run_id=run_id,
        session_id="s",
        trace_id="trace",
        agent="test",
        input={},
        attempt=1,
        settings=settings,
        emitter=emitter,
        messages=MessageStore(collections),
    )


async def test_the_context_writes_events_and_messages(
    settings: Settings, collections: Collections
) -> None:
    small = dataclasses.replace(settings, event_max_bytes=2048)
    async with Emitter(EventWriter(collections), "s", interval=0, max_events=64) as emitter:
        ctx = context(small, collections, emitter)
        assert await ctx.emit("tool.call", {"name": "search"}) == "ctx~1"
        for bad_type, bad_data in (("run.completed", {}), ("a b", {}), ("x", {"$set": 1})):
            with pytest.raises(ValueError):  # noqa: PT011 - each message is checked below
                await ctx.emit(bad_type, bad_data)
        first = await ctx.message("user", "hi")
        async with ctx.stream_message(parent_id=first) as reply:
            await reply.delta("hello ")
            await reply.delta("")
            await reply.delta("y" * 900)  # over one event: split into several deltas
        with pytest.raises(PayloadTooLarge):
            await ctx.emit("big", {"text": "z" * 4096})
        long = await ctx.message("assistant", "w" * 5000)
    stored = await session_events(collections, "s")
    assert types(stored) == [
        "tool.call",
        "message.completed",
        *["message.delta"] * (len(stored) - 4),
        "message.completed",
        "message.completed",
    ]
    assert len(stored) > 6
    assert {e["trace_id"] for e in stored} == {"trace"}
    assert "".join(e["data"]["delta"] for e in stored[2:-2]) == "hello " + "y" * 900
    assert stored[-2]["data"] == {
        "message_id": reply.message_id,
        "role": "assistant",
        "content": "hello " + "y" * 900,
    }
    assert stored[-1]["data"]["truncated"] is True
    messages = await MessageStore(collections).list("s")
    assert [(m["message_id"], m["parent_id"], m["role"]) for m in messages] == [
        (first, None, "user"),
        (reply.message_id, first, "assistant"),
        (long, None, "assistant"),
    ]
    assert messages[2]["content"] == "w" * 5000  # the whole text, even when the event is cut
    assert {m["trace_id"] for m in messages} == {"trace"}


async def test_the_context_says_when_it_is_cancelled(
    settings: Settings, collections: Collections
) -> None:
    seen: list[bool] = []
    started = asyncio.Event()

    async with Emitter(EventWriter(collections), "s", interval=0, max_events=64) as emitter:
        ctx = context(settings, collections, emitter)

        async def agent() -> None:
            seen.append(ctx.cancelled)
            try:
                started.set()
                await asyncio.Event().wait()
            finally:
                seen.append(ctx.cancelled)

        task = asyncio.create_task(agent())
        await asyncio.wait_for(started.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert seen == [False, True]
