"""The hub's fan-out, watermarks and buffer bound (no database needed)."""

from __future__ import annotations

import asyncio
import datetime

from app.hub import Hub


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


async def test_each_event_is_framed_once_and_shared() -> None:
    hub = Hub(buffer_limit=10)
    async with hub.subscribe("s") as one, hub.subscribe("s") as two, hub.subscribe("x") as other:
        hub.start_at("s", 0)
        hub.publish([doc("s", 1), doc("s", 2)])
        first, second = one.drain(), two.drain()
        assert [seq for seq, _ in first] == [1, 2]
        assert all(a[1] is b[1] for a, b in zip(first, second, strict=True))
        assert other.drain() == []
    assert hub.subscribers == 0
    assert hub.sessions() == []


async def test_duplicates_are_dropped_and_holes_are_tracked() -> None:
    hub = Hub()
    async with hub.subscribe("s") as sub:
        hub.start_at("s", 0)
        assert hub.publish([doc("s", 1), doc("s", 3), doc("s", 3), doc("s", 1)]) == 2
        assert hub.positions() == {"s": 1}
        assert hub.holes(older_than=0) == {"s": [2]}
        hub.publish([doc("s", 2)])
        assert hub.positions() == {"s": 3}
        assert hub.holes(older_than=0) == {}
        assert [seq for seq, _ in sub.drain()] == [1, 3, 2]


async def test_a_full_buffer_overflows_instead_of_growing() -> None:
    hub = Hub(buffer_limit=3)
    async with hub.subscribe("s") as slow, hub.subscribe("s") as fast:
        hub.start_at("s", 0)
        for seq in range(1, 4):
            hub.publish([doc("s", seq)])
            fast.drain()
        hub.publish([doc("s", 4)])
        assert slow.overflowed
        assert len(slow) == 0
        assert not fast.overflowed
        hub.publish([doc("s", 5)])
        assert len(slow) == 0


async def test_close_wakes_every_subscriber() -> None:
    hub = Hub()
    async with hub.subscribe("s") as sub:
        hub.close()
        async with asyncio.timeout(1):
            await sub.wait(timeout=None)  # would block forever without the wake-up
        assert hub.closing.is_set()
