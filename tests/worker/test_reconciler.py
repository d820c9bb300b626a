"""The run reconciler on real Redis and MongoDB: which unowned runs it ends, and how."""

from __future__ import annotations

import dataclasses
import datetime
import time
from collections.abc import AsyncIterator

import pytest
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix

from app.jobs import QUEUE_NAME, arq_pool
from app.metrics import WorkerMetrics
from app.mongo import Collections
from app.settings import Settings
from app.store.events import EventWriter, utc_now
from app.store.runs import RunStatus, RunStore
from support.worker import running_worker, session_events, types, wait_status
from worker.reconciler import LOCK_KEY, UNOWNED_PREFIX, Reconciler

LIMIT = 600.0


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[ArqRedis]:
    assert settings.redis_url is not None
    pool = await arq_pool(settings.redis_url.get())
    yield pool
    await pool.aclose()


def reconciler(
    redis: ArqRedis, collections: Collections, *, confirm: float = 0.0, batch: int = 500
) -> tuple[Reconciler, WorkerMetrics]:
    metrics = WorkerMetrics()
    found = Reconciler(
        redis=redis,
        runs=RunStore(collections),
        writer=EventWriter(collections),
        time_limit=LIMIT,
        confirm=confirm,
        metrics=metrics,
        batch=batch,
    )
    return found, metrics


async def record(
    collections: Collections, run_id: str, *, started_ago: float | None = None, cancel: bool = False
) -> None:
    """A run record as the API and a worker leave it: queued, or running since `started_ago`."""
    past = utc_now() - datetime.timedelta(seconds=(started_ago or 0) + 60)
    store = RunStore(collections, clock=lambda: past)
    await store.ensure(run_id, run_id, "echo", None)
    if started_ago is not None:
        began = utc_now() - datetime.timedelta(seconds=started_ago)
        await RunStore(collections, clock=lambda: began).start(run_id, worker="gone:1")
    if cancel:
        await store.request_cancel(run_id)


async def status(collections: Collections, run_id: str) -> str:
    found = await collections.runs.find_one({"run_id": run_id})
    assert found is not None
    return str(found["status"])


async def test_unowned_runs_end_with_one_terminal_event_each(
    redis: ArqRedis, collections: Collections
) -> None:
    await record(collections, "cancelled", started_ago=5, cancel=True)
    await record(collections, "overdue", started_ago=LIMIT + 5)
    await record(collections, "lost", started_ago=5)
    await record(collections, "vanished")  # queued, but its job is gone
    pass_, metrics = reconciler(redis, collections)
    ended = dict(await pass_.reconcile())
    assert ended == {
        "cancelled": RunStatus.CANCELLED,
        "overdue": RunStatus.TIMED_OUT,
        "lost": RunStatus.FAILED,
        "vanished": RunStatus.FAILED,
    }
    for run_id, kind in [
        ("cancelled", "run.cancelled"),
        ("overdue", "run.timed_out"),
        ("lost", "run.failed"),
        ("vanished", "run.failed"),
    ]:
        events = await session_events(collections, run_id)
        assert types(events)[-1] == kind
        assert [e["event_id"] for e in events if e["type"] == kind] == [f"{run_id}~end"]
    lost = await collections.runs.find_one({"run_id": "lost"})
    assert lost is not None
    assert lost["error"]["type"] == "JobLost"
    assert lost["ended_by"] == "reconciler"
    overdue = await collections.runs.find_one({"run_id": "overdue"})
    assert overdue is not None
    assert overdue["error"] == {"type": "TimeoutError", "message": "the run exceeded 600s"}
    assert metrics.runs_reconciled.labels("failed")._value.get() == 2
    assert await pass_.reconcile() == []  # nothing is ended twice
    assert len(await session_events(collections, "lost")) == 1  # its one terminal event


async def test_owned_and_queued_runs_are_left_to_their_workers(
    redis: ArqRedis, collections: Collections
) -> None:
    await record(collections, "owned", started_ago=LIMIT + 5, cancel=True)
    await redis.set(in_progress_key_prefix + "owned", b"1", px=10_000)
    await record(collections, "waiting", started_ago=LIMIT + 5)  # re-queued after a crash
    await redis.zadd(QUEUE_NAME, {"waiting": time.time() * 1000})
    await record(collections, "to-cancel", started_ago=1, cancel=True)  # queued, cancel asked
    await redis.zadd(QUEUE_NAME, {"to-cancel": time.time() * 1000})
    pass_, _ = reconciler(redis, collections)
    assert await pass_.reconcile() == [("to-cancel", RunStatus.CANCELLED)]
    assert await status(collections, "owned") == "running"
    assert await status(collections, "waiting") == "running"


async def test_a_run_is_ended_only_after_it_stayed_unowned_for_the_confirm_time(
    redis: ArqRedis, collections: Collections
) -> None:
    await record(collections, "quiet", started_ago=5)
    pass_, _ = reconciler(redis, collections, confirm=30.0)
    await collections.runs.update_one(  # older than the confirm time, so the pass reads it
        {"run_id": "quiet"}, {"$set": {"created_at": utc_now() - datetime.timedelta(hours=1)}}
    )
    assert await pass_.reconcile() == []  # first sighting: noted, not acted on
    first = await redis.get(UNOWNED_PREFIX + "quiet")
    assert first is not None
    assert await pass_.reconcile() == []  # still within the confirm time
    assert await redis.get(UNOWNED_PREFIX + "quiet") == first
    await redis.set(UNOWNED_PREFIX + "quiet", str(int(first) - 31_000))  # as if 31 s had passed
    assert await pass_.reconcile() == [("quiet", RunStatus.FAILED)]
    assert await redis.get(UNOWNED_PREFIX + "quiet") is None


async def test_a_claim_that_comes_back_clears_the_sighting(
    redis: ArqRedis, collections: Collections
) -> None:
    await record(collections, "back", started_ago=5)
    await collections.runs.update_one(
        {"run_id": "back"}, {"$set": {"created_at": utc_now() - datetime.timedelta(hours=1)}}
    )
    pass_, _ = reconciler(redis, collections, confirm=30.0)
    assert await pass_.reconcile() == []
    assert await redis.get(UNOWNED_PREFIX + "back") is not None
    await redis.set(in_progress_key_prefix + "back", b"1", px=10_000)  # the owner's heartbeat
    assert await pass_.reconcile() == []
    assert await redis.get(UNOWNED_PREFIX + "back") is None


async def test_a_worker_that_took_the_run_meanwhile_keeps_it(
    redis: ArqRedis, collections: Collections
) -> None:
    await record(collections, "taken", started_ago=5)
    seen = await collections.runs.find_one({"run_id": "taken"}, {"_id": 0})
    assert seen is not None
    await RunStore(collections).start("taken", worker="alive:2")  # attempt 2 begins
    store = RunStore(collections)
    assert await store.abandon(seen, RunStatus.FAILED, None) is None
    assert await status(collections, "taken") == "running"


async def test_one_pass_at_a_time(redis: ArqRedis, collections: Collections) -> None:
    await record(collections, "lost", started_ago=5)
    pass_, _ = reconciler(redis, collections)
    held = redis.lock(LOCK_KEY, timeout=30)
    assert await held.acquire(blocking=False)
    assert await pass_.run_once() is None  # another worker's pass is running
    assert await status(collections, "lost") == "running"
    await held.release()
    assert await pass_.run_once() == [("lost", RunStatus.FAILED)]
    assert await redis.get(LOCK_KEY) is None  # released after the pass


async def test_runs_by_status(collections: Collections) -> None:
    await record(collections, "a")
    await record(collections, "b", started_ago=1)
    await record(collections, "c", started_ago=1)
    assert await RunStore(collections).count_by_status() == {"queued": 1, "running": 2}


async def test_workers_run_the_reconciler_by_themselves(
    settings: Settings, collections: Collections
) -> None:
    quick = dataclasses.replace(
        settings, reconcile_interval=0.1, worker_claim_ttl=1.0, worker_heartbeat=0.1
    )
    await record(collections, "abandoned", started_ago=5)
    async with running_worker(quick):
        ended = await wait_status(collections, "abandoned", "failed", timeout=20)
    assert ended["error"]["type"] == "JobLost"
    assert ended["ended_by"] == "reconciler"


async def test_a_pass_pages_through_every_active_run(
    redis: ArqRedis, collections: Collections
) -> None:
    for n in range(7):
        await record(collections, f"p{n}", started_ago=5)
    same = utc_now() - datetime.timedelta(hours=1)
    await collections.runs.update_many(  # several runs share a created_at across pages
        {"run_id": {"$in": ["p1", "p2", "p3"]}}, {"$set": {"created_at": same}}
    )
    await redis.zadd(QUEUE_NAME, {"p1": time.time() * 1000})  # waiting: left alone, so
    pass_, _ = reconciler(redis, collections, batch=2)  # the next page reads it again
    ended = await pass_.reconcile()
    assert sorted(run_id for run_id, _ in ended) == ["p0", *(f"p{n}" for n in range(2, 7))]
