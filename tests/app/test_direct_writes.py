"""Parked subscriptions: the hub writes frames straight through a writer, in order, bounded."""

from __future__ import annotations

import asyncio
import datetime

from app.hub import Hub, Subscription


def doc(session: str, seq: int) -> dict[str, object]:
    return {
        "event_id": f"{session}-{seq}",
        "session_id": session,
        "seq": seq,
        "type": "t",
        "data": {},
        "trace_id": None,
        "timestamp": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
    }


class Recorder:
    """A writer that keeps what it was given, and refuses while `refusing` is set."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.refusing = False

    def __call__(self, body: bytes, /) -> bool:
        if self.refusing:
            return False
        self.frames.append(body)
        return True


def ids(frames: list[bytes]) -> list[str]:
    """The positions of SSE frames (`id: <seq>.<tag>` first)."""
    return [f.split(b"\n", 1)[0].removeprefix(b"id: ").decode().split(".")[0] for f in frames]


async def written_out() -> None:
    """Let the hub's write-out pass (scheduled with call_soon by publish) run."""
    await asyncio.sleep(0)


async def test_a_parked_subscription_is_written_without_waking_its_stream() -> None:
    written: list[int] = []
    hub = Hub(buffer_limit=10, on_written=written.append)
    writer = Recorder()
    async with hub.subscribe("s") as sub:
        hub.start_at("s", 0)
        sub.park(0, writer)
        waiting = asyncio.create_task(sub.wait(None))
        await asyncio.sleep(0)  # the stream is in its wait
        hub.publish([doc("s", 1), doc("s", 2)])
        hub.publish([doc("s", 3)])
        assert writer.frames == []  # not in the publishing pass: right after it
        await written_out()
        assert len(writer.frames) == 1  # one write for the three events
        assert ids(writer.frames[0].split(b"\n\n")[:-1]) == ["1", "2", "3"]
        assert len(sub) == 0
        hub.publish([doc("s", 4)])
        await written_out()
        assert ids(writer.frames[1:]) == ["4"]
        assert not waiting.done()  # nobody woke the stream
        assert written == [3, 1]
        assert hub.written == 4
        sub.wake()
        await waiting
        assert sub.unpark(0) == 4  # the stream continues after what the hub wrote


async def test_a_hole_or_a_refusal_leaves_the_items_to_the_stream() -> None:
    hub = Hub(buffer_limit=10)
    writer = Recorder()
    async with hub.subscribe("s") as sub:
        hub.start_at("s", 0)
        sub.park(0, writer)
        hub.publish([doc("s", 1), doc("s", 3)])  # 3 arrives before 2
        await written_out()
        assert ids(writer.frames) == ["1"]
        assert sub.unpark(0) == 1
        assert [seq for seq, _ in sub.drain()] == [3]  # held back by the stream until 2 comes
        sub.park(3, writer)
        writer.refusing = True  # a paused (slow) or closed connection
        hub.publish([doc("s", 2), doc("s", 4), doc("s", 5)])
        await written_out()
        assert ids(writer.frames) == ["1"]
        assert [seq for seq, _ in sub.drain()] == [2, 4, 5]  # nothing lost, nothing reordered
        assert sub.unpark(3) == 3


async def test_positions_the_stream_already_has_are_dropped_and_voids_advance() -> None:
    hub = Hub(buffer_limit=10)
    writer = Recorder()
    async with hub.subscribe("s") as sub:
        sub.park(5, writer)  # the replay went further than the hub's watermark
        hub.start_at("s", 3)
        void = doc("s", 7) | {"void": True}
        hub.publish([doc("s", 4), doc("s", 5), doc("s", 6), void, doc("s", 8)])
        await written_out()
        assert ids(writer.frames[0].split(b"\n\n")[:-1]) == ["6", "8"]
        assert sub.unpark(5) == 8


async def test_the_bound_is_the_buffer_on_both_paths() -> None:
    hub = Hub(buffer_limit=3)
    writer = Recorder()
    async with hub.subscribe("s") as sub:
        hub.start_at("s", 0)
        sub.park(0, writer)
        hub.publish([doc("s", seq) for seq in range(1, 5)])  # four in one pass: over the bound
        await written_out()
        assert sub.overflowed
        assert writer.frames == []
        assert sub.unpark(0) == 0


async def test_a_subscriber_released_before_the_write_out_is_skipped() -> None:
    hub = Hub(buffer_limit=10)
    writer = Recorder()
    async with hub.subscribe("s") as sub:
        hub.start_at("s", 0)
        sub.park(0, writer)
        hub.publish([doc("s", 1)])
    await written_out()
    assert writer.frames == []


def test_park_is_ignored_while_a_wake_up_is_pending() -> None:
    sub = Subscription("s", 10)
    writer = Recorder()
    sub.push((1, b"x"))
    sub.park(0, writer)
    assert not sub.push((2, b"y"))
    assert sub.write_out() == 0
    assert writer.frames == []
    assert [seq for seq, _ in sub.drain()] == [1, 2]
