"""Runs on real worker processes (`python -m worker`): cancel, time limit, sharing the queue,
SIGKILL mid-run, SIGTERM, and the health probe."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from prometheus_client.parser import text_string_to_metric_families

from app.jobs import arq_pool
from app.mongo import Collections
from app.runs import Runs
from app.settings import Settings
from app.store.events import EventWriter
from embedded.redis import free_port
from support.waits import eventually_async
from support.worker import (
    ROOT,
    WorkerProcess,
    burst,
    deltas_text,
    queue_length,
    running_worker,
    session_events,
    types,
    wait_event,
    wait_status,
    worker_env,
)

pytestmark = pytest.mark.timeout(90)

TERMINAL = {"run.completed", "run.failed", "run.cancelled", "run.timed_out"}
Spawn = Callable[..., WorkerProcess]


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[ArqRedis]:
    assert settings.redis_url is not None
    pool = await arq_pool(settings.redis_url.get())
    yield pool
    await pool.aclose()


@pytest.fixture
def runs(settings: Settings, collections: Collections, redis: ArqRedis) -> Runs:
    """The app's run helper, as the API uses it."""
    return Runs(
        settings=settings,
        collections=collections,
        writer=EventWriter(collections),
        redis=redis,
    )


async def start(runs: Runs, session: str, **input: Any) -> str:
    record = await runs.start(session, "echo", input)
    return str(record["run_id"])


def assert_one_lifecycle(events: list[dict[str, Any]]) -> None:
    kinds = types(events)
    assert kinds[:2] == ["run.queued", "run.started"]
    assert [k for k in kinds if k in TERMINAL] == [kinds[-1]]
    assert len({e["event_id"] for e in events}) == len(events)


async def test_cancelling_a_running_run_ends_it_within_seconds(
    runs: Runs, collections: Collections, spawn_worker: Spawn
) -> None:
    spawn_worker()
    run_id = await start(runs, "slow", text="x" * 200, delay=0.1)  # 20 s if left alone
    await wait_event(collections, "slow", "message.delta")
    asked = time.monotonic()
    ended, record = await runs.cancel(run_id)
    assert not ended
    assert record["status"] == "running"
    record = await wait_status(collections, run_id, "cancelled", timeout=5)
    assert time.monotonic() - asked < 5
    assert record["error"] is None
    events = await session_events(collections, "slow")
    assert_one_lifecycle(events)
    assert events[-1]["type"] == "run.cancelled"
    # The message it was streaming is closed with what was said, marked incomplete.
    assert types(events)[-2] == "message.completed"
    said = "".join(e["data"]["delta"] for e in events if e["type"] == "message.delta")
    assert events[-2]["data"]["content"] == said
    assert (events[-2]["data"]["incomplete"], events[-2]["data"]["reason"]) == (True, "cancelled")
    with pytest.raises(Exception, match="already ended: cancelled"):
        await runs.cancel(run_id)


async def test_a_cancelled_queued_run_never_starts(
    settings: Settings, runs: Runs, collections: Collections
) -> None:
    run_id = await start(runs, "queued", text="never")
    ended, record = await runs.cancel(run_id)
    assert ended
    assert record["status"] == "cancelled"
    worker = await burst(settings)  # the job is taken off the queue without running
    assert worker.jobs_failed == 1
    assert worker.jobs_complete == 0
    assert await queue_length(settings) == 0
    events = await session_events(collections, "queued")
    assert types(events) == ["run.queued", "run.cancelled"]
    record = await wait_status(collections, run_id, "cancelled")
    assert record.get("started_at") is None


async def test_the_time_limit_ends_a_run_timed_out(
    settings: Settings, runs: Runs, collections: Collections
) -> None:
    limited = dataclasses.replace(settings, job_time_limit=1.0)
    run_id = await start(runs, "limit", text="y" * 100, delay=0.05)  # 5 s if left alone
    async with running_worker(limited):
        record = await wait_status(collections, run_id, "timed_out", timeout=10)
    assert record["error"] == {"type": "TimeoutError", "message": "the run exceeded 1s"}
    elapsed = (record["ended_at"] - record["started_at"]).total_seconds()
    assert 0.9 <= elapsed < 3
    events = await session_events(collections, "limit")
    assert_one_lifecycle(events)
    assert events[-1]["type"] == "run.timed_out"
    assert events[-1]["data"]["error"] == record["error"]
    assert types(events).count("message.delta") >= 5  # what it wrote before the limit stays


async def test_two_workers_share_the_queue_and_run_each_job_once(
    settings: Settings, runs: Runs, collections: Collections, spawn_worker: Spawn
) -> None:
    first = spawn_worker(WORKER_CONCURRENCY="1")
    second = spawn_worker(WORKER_CONCURRENCY="1")
    await first.wait_for_output("Starting worker")
    await second.wait_for_output("Starting worker")
    run_ids = [await start(runs, f"share-{i}", text="abcdefghij", delay=0.03) for i in range(6)]
    records = [await wait_status(collections, r, "succeeded", timeout=30) for r in run_ids]
    assert [r["attempts"] for r in records] == [1] * 6  # the job function ran once per run
    assert len({r["worker"] for r in records}) == 2  # and both workers took runs
    for i in range(6):
        events = await session_events(collections, f"share-{i}")
        assert_one_lifecycle(events)
        assert deltas_text(events) == "abcdefghij"
    assert not await collections.events.find_one({"void": True})  # nothing written twice


async def test_a_run_whose_worker_is_killed_is_retried_without_duplicates(
    settings: Settings, runs: Runs, collections: Collections, spawn_worker: Spawn
) -> None:
    # Claims live 2 s without their owner's heartbeat; the time limit stays the default 600 s,
    # which used to be how long a dead worker's run waited (job_timeout + 10 s).
    env = {"JOB_TIME_LIMIT": "600", "WORKER_CLAIM_TTL": "2", "WORKER_HEARTBEAT": "0.5"}
    doomed = spawn_worker(**env)
    await doomed.wait_for_output("Starting worker")
    text = "0123456789" * 3
    run_id = await start(runs, "crash", text=text, delay=0.1)  # 3 s

    async def going() -> bool:
        return len(await session_events(collections, "crash")) >= 8

    await eventually_async(going, 20, "the run to get going")
    doomed.signal(signal.SIGKILL)
    killed = time.monotonic()
    await doomed.wait(10)
    written = await session_events(collections, "crash")
    assert "run.completed" not in types(written)
    spawn_worker(**env)
    record = await wait_status(collections, run_id, "succeeded", timeout=40)
    assert time.monotonic() - killed < 15
    assert record["attempts"] == 2
    events = await session_events(collections, "crash")
    assert events[: len(written)] == written  # the retry continued where the first try stopped
    assert_one_lifecycle(events)
    started = [e for e in events if e["type"] == "run.started"]
    assert [e["data"]["attempt"] for e in started] == [1, 2]  # one run.started per attempt
    assert deltas_text(events) == text  # every delta once, in order
    assert types(events).count("message.completed") == 1
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))  # no voided positions
    assert await collections.messages.count_documents({"session_id": "crash"}) == 1


async def test_sigterm_lets_a_running_run_finish(
    runs: Runs, collections: Collections, spawn_worker: Spawn
) -> None:
    worker = spawn_worker(SHUTDOWN_GRACE="10")
    run_id = await start(runs, "drain", text="abcdefghij", delay=0.1)  # 1 s
    await wait_event(collections, "drain", "message.delta")
    worker.signal(signal.SIGTERM)
    assert await worker.wait(15) == 0
    record = await wait_status(collections, run_id, "succeeded", timeout=1)
    assert record["attempts"] == 1


async def test_sigterm_hands_a_long_run_back_to_the_queue(
    runs: Runs, collections: Collections, spawn_worker: Spawn
) -> None:
    leaving = spawn_worker(SHUTDOWN_GRACE="0.5")
    text = "abcdefghijklmnopqrstuvwxyz"
    run_id = await start(runs, "handback", text=text, delay=0.1)  # 2.6 s
    await wait_event(collections, "handback", "message.delta")
    leaving.signal(signal.SIGTERM)
    assert await leaving.wait(15) == 0
    assert "will be run again" in leaving.output()
    record = await wait_status(collections, run_id, "running", timeout=1)
    spawn_worker()
    record = await wait_status(collections, run_id, "succeeded", timeout=20)
    assert record["attempts"] == 2
    events = await session_events(collections, "handback")
    assert_one_lifecycle(events)
    assert deltas_text(events) == text


async def test_the_health_probe_follows_the_worker(settings: Settings, spawn_worker: Spawn) -> None:
    def check() -> int:
        env = worker_env(settings)
        result = subprocess.run(
            [sys.executable, "-m", "worker", "--check"], env=env, cwd=ROOT, capture_output=True
        )
        return result.returncode

    assert await asyncio.to_thread(check) == 1
    worker = spawn_worker()
    await worker.wait_for_output("Starting worker")
    deadline = time.monotonic() + 10
    while await asyncio.to_thread(check) != 0:
        assert time.monotonic() < deadline, worker.output()
    worker.signal(signal.SIGTERM)
    assert await worker.wait(15) == 0
    assert await asyncio.to_thread(check) == 1  # a stopped worker deletes its key


async def test_a_worker_serves_run_metrics(
    runs: Runs, collections: Collections, spawn_worker: Spawn
) -> None:
    port = free_port()
    worker = spawn_worker(WORKER_METRICS_PORT=str(port), OPENAI_BASE_URL="http://127.0.0.1:9/v1")
    await worker.wait_for_output("worker metrics on")
    done = await start(runs, "metered", text="hello")
    await wait_status(collections, done, "succeeded", timeout=20)
    failed = (await runs.start("metered", "openai", {"prompt": "hi"}))["run_id"]  # refused
    await wait_status(collections, str(failed), "failed", timeout=20)
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("agentstream_runs_total", (("agent", "echo"), ("status", "succeeded")))] == 1
    assert samples[("agentstream_runs_total", (("agent", "openai"), ("status", "failed")))] == 1
    assert samples[("agentstream_run_duration_seconds_count", (("agent", "echo"),))] == 1
    reasons = [k for k in samples if k[0] == "agentstream_run_failures_total"]
    assert len(reasons) == 1
    assert samples[("agentstream_events_created_total", (("type", "message.delta"),))] == 5
