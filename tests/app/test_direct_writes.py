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
    return [f.split(b"\n", 1)[0].removeprefix(b"id: ").decode().split(".")[0] for f in frames]


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
        assert ids(writer.frames) == ["1", "2", "3"]
        assert len(sub) == 0
        assert not waiting.done()  # nobody woke the stream
        assert written == [2, 1]
        assert hub.written == 3
        sub.wake()
        await waiting
        assert sub.unpark(0) == 3  # the stream continues after what the hub wrote


async def test_out_of_order_and_refused_frames_go_to_the_buffer_and_wake_the_stream() -> None:
    hub = Hub(buffer_limit=10)
    writer = Recorder()
    async with hub.subscribe("s") as sub:
        hub.start_at("s", 0)
        sub.park(0, writer)
        hub.publish([doc("s", 1), doc("s", 3), doc("s", 2)])  # 3 arrives before 2
        assert ids(writer.frames) == ["1"]
        assert [seq for seq, _ in sub.drain()] == [3, 2]
        assert sub.unpark(0) == 1
        sub.park(3, writer)
        writer.refusing = True  # a paused (slow) or closed connection
        hub.publish([doc("s", 4), doc("s", 5)])
        assert ids(writer.frames) == ["1"]
        assert [seq for seq, _ in sub.drain()] == [4, 5]
        assert sub.unpark(3) == 3


async def test_positions_the_stream_already_has_are_dropped_and_voids_advance() -> None:
    hub = Hub(buffer_limit=10)
    writer = Recorder()
    async with hub.subscribe("s") as sub:
        sub.park(5, writer)  # the replay went further than the hub's watermark
        hub.start_at("s", 3)
        void = doc("s", 7) | {"void": True}
        hub.publish([doc("s", 4), doc("s", 5), doc("s", 6), void, doc("s", 8)])
        assert ids(writer.frames) == ["6", "8"]
        assert sub.unpark(5) == 8


async def test_the_bound_counts_direct_writes_and_wakes_the_stream_halfway() -> None:
    hub = Hub(buffer_limit=4)
    writer = Recorder()
    async with hub.subscribe("s") as sub:
        hub.start_at("s", 0)
        sub.park(0, writer)
        waiting = asyncio.create_task(sub.wait(None))
        await asyncio.sleep(0)
        hub.publish([doc("s", 1)])
        assert not waiting.done()
        hub.publish([doc("s", 2)])  # half the bound: the stream is nudged, still parked
        await waiting
        assert not sub.overflowed
        hub.publish([doc("s", 3), doc("s", 4), doc("s", 5)])  # its stream has not run
        assert ids(writer.frames) == ["1", "2", "3", "4"]
        assert sub.overflowed  # five items between two drains: as with the buffer alone
        assert sub.unpark(0) == 4


async def test_a_stream_that_keeps_up_never_overflows() -> None:
    hub = Hub(buffer_limit=4)
    writer = Recorder()
    async with hub.subscribe("s") as sub:
        hub.start_at("s", 0)
        position = 0
        for seq in range(1, 41):
            sub.park(position, writer)
            hub.publish([doc("s", seq)])
            position = sub.unpark(position)
            assert sub.drain() == []
        assert not sub.overflowed
        assert len(writer.frames) == 40


def test_park_is_ignored_while_a_wake_up_is_pending() -> None:
    sub = Subscription("s", 10)
    writer = Recorder()
    sub.push((1, b"x"))
    sub.park(0, writer)
    sub.push((2, b"y"))
    assert writer.frames == []
    assert [seq for seq, _ in sub.drain()] == [1, 2]
