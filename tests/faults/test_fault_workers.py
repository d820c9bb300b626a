"""Workers and Redis fail under runs: a worker SIGKILLed mid-run, a run cancelled while its
worker is dead, Redis restarted while runs are queued and running. Every run reaches one
terminal status with one terminal event, none runs twice, no event is written twice."""

from __future__ import annotations

import dataclasses
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from arq.connections import ArqRedis

from app.jobs import arq_pool
from app.mongo import Collections, Document
from app.runs import Runs
from app.settings import Secret, Settings
from app.store.events import EventWriter
from embedded.redis import free_port, start_redis, stop
from support.waits import eventually_async
from support.worker import (
    WorkerProcess,
    deltas_text,
    session_events,
    spawn_worker_process,
    types,
    wait_event,
    wait_status,
)

pytestmark = pytest.mark.timeout(120)

TERMINAL = {"run.completed", "run.failed", "run.cancelled", "run.timed_out"}
RSS_BOUND = 400 * 1024 * 1024
Spawn = Callable[..., WorkerProcess]
# Short claims and reconciler passes, for the tests that do not measure the defaults.
QUICK = {"WORKER_CLAIM_TTL": "2", "WORKER_HEARTBEAT": "0.5", "RECONCILE_INTERVAL": "0.5"}


@pytest.fixture
async def runs(settings: Settings, collections: Collections) -> AsyncIterator[Runs]:
    assert settings.redis_url is not None
    pool = await arq_pool(settings.redis_url.get())
    yield runs_on(settings, collections, pool)
    await pool.aclose()


def runs_on(settings: Settings, collections: Collections, pool: ArqRedis) -> Runs:
    return Runs(
        settings=settings, collections=collections, writer=EventWriter(collections), redis=pool
    )


async def start(runs: Runs, session: str, **input: Any) -> str:
    return str((await runs.start(session, "echo", input))["run_id"])


def owner(workers: list[WorkerProcess], record: Document) -> WorkerProcess:
    pid = int(str(record["worker"]).rsplit(":", 1)[1])
    return next(w for w in workers if w.process.pid == pid)


def rss_bytes(worker: WorkerProcess) -> int:
    for line in Path(f"/proc/{worker.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS line")


def assert_one_ending(events: list[Document]) -> None:
    kinds = types(events)
    assert kinds[0] == "run.queued"
    assert [k for k in kinds if k in TERMINAL] == [kinds[-1]]  # one ending, and last
    assert not [i for i, n in Counter(e["event_id"] for e in events).items() if n > 1]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))  # nothing voided


async def test_a_killed_worker_s_run_completes_on_another_within_30_s(
    runs: Runs, collections: Collections, spawn_worker: Spawn
) -> None:
    # Every default: JOB_TIME_LIMIT 600 s, WORKER_CLAIM_TTL 10 s, WORKER_HEARTBEAT 3 s.
    workers = [spawn_worker(), spawn_worker()]
    for worker in workers:
        await worker.wait_for_output("Starting worker")
    text = "abcdefghijklmnopqrstuvwxyz"
    run_id = await start(runs, "killed", text=text, delay=0.1)  # 2.6 s
    await wait_event(collections, "killed", "message.delta")
    record = await wait_status(collections, run_id, "running")
    doomed = owner(workers, record)
    doomed.signal(signal.SIGKILL)
    killed = time.monotonic()
    await doomed.wait(10)
    record = await wait_status(collections, run_id, "succeeded", timeout=40)
    took = time.monotonic() - killed
    assert took < 30, took
    assert record["attempts"] == 2
    events = await session_events(collections, "killed")
    assert_one_ending(events)
    assert deltas_text(events) == text  # every delta once, in order
    started = [e["data"]["attempt"] for e in events if e["type"] == "run.started"]
    assert started == [1, 2]
    survivor = next(w for w in workers if w is not doomed)
    assert rss_bytes(survivor) < RSS_BOUND
    again = await start(runs, "after", text="ok")  # the survivor keeps serving
    await wait_status(collections, again, "succeeded", timeout=20)


async def test_a_run_cancelled_while_its_worker_is_dead_ends_cancelled(
    runs: Runs, collections: Collections, spawn_worker: Spawn
) -> None:
    workers = [spawn_worker(**QUICK), spawn_worker(**QUICK)]
    for worker in workers:
        await worker.wait_for_output("Starting worker")
    run_id = await start(runs, "orphan", text="x" * 100, delay=0.1)  # 10 s if left alone
    await wait_event(collections, "orphan", "message.delta")
    doomed = owner(workers, await wait_status(collections, run_id, "running"))
    doomed.signal(signal.SIGKILL)
    await doomed.wait(10)
    ended, record = await runs.cancel(run_id)  # asked while nobody runs it
    asked = time.monotonic()
    assert not ended
    assert record["status"] == "running"
    await wait_status(collections, run_id, "cancelled", timeout=30)
    assert time.monotonic() - asked < 30
    events = await session_events(collections, "orphan")
    assert_one_ending(events)
    assert events[-1]["type"] == "run.cancelled"
    assert "message.completed" not in types(events)


async def test_a_redis_restart_ends_every_run_once(
    settings: Settings, collections: Collections, tmp_path: Path
) -> None:
    port = free_port()
    redis_process, url = start_redis(port)
    own = dataclasses.replace(settings, redis_url=Secret(url), worker_concurrency=2)
    worker = spawn_worker_process(own, tmp_path / "worker.log", **QUICK)
    pool = await arq_pool(url)
    try:
        await worker.wait_for_output("Starting worker")
        runs = runs_on(own, collections, pool)
        run_ids = [await start(runs, f"r{n}", text="abcdefghij", delay=0.3) for n in range(4)]

        async def two_running() -> bool:
            found = await collections.runs.count_documents({"status": "running"})
            return found == 2

        await eventually_async(two_running, 20, "two runs to be running, two queued")
        stop(redis_process)  # memory only: the queue, claims and results are gone
        await worker.wait_for_output("Redis unavailable")  # its polls fail; it stays up
        redis_process, _ = start_redis(port)
        await worker.wait_for_output("Redis reachable again")
        records = [
            await wait_status(collections, r, "succeeded", "failed", timeout=40) for r in run_ids
        ]
        assert rss_bytes(worker) < RSS_BOUND
        again = await start(runs, "after", text="ok")  # ready again by itself
        await wait_status(collections, again, "succeeded", timeout=20)
    finally:
        await pool.aclose()
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait(10)
        stop(redis_process)
    assert [r["attempts"] for r in records if r["status"] == "succeeded"] == [1, 1]  # once
    lost = [r for r in records if r["status"] == "failed"]
    assert len(lost) == 2  # the queued ones: their jobs were in the Redis that restarted
    assert all(r["error"]["type"] == "JobLost" and r.get("started_at") is None for r in lost)
    for record in records:
        events = await session_events(collections, record["session_id"])
        assert_one_ending(events)
        if record["status"] == "succeeded":
            assert deltas_text(events) == "abcdefghij"
