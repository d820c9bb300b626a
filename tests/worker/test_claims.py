"""Short job claims kept alive by the worker's heartbeat (worker/claims.py), on real Redis."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import pytest
from arq.connections import RedisSettings
from arq.constants import in_progress_key_prefix
from arq.worker import func
from redis.asyncio import Redis

from app.jobs import arq_pool, enqueue, run_args
from app.mongo import Collections
from app.settings import Settings
from support.waits import eventually, eventually_async
from support.worker import running_worker, wait_status
from worker.claims import ClaimingWorker
from worker.settings import close_worker


async def test_a_running_job_s_claim_is_short_and_renewed(
    settings: Settings, collections: Collections
) -> None:
    quick = dataclasses.replace(
        settings, worker_claim_ttl=1.0, worker_heartbeat=0.2, job_time_limit=600.0
    )
    assert quick.redis_url is not None
    pool = await arq_pool(quick.redis_url.get())
    redis: Redis = Redis.from_url(quick.redis_url.get())
    key = in_progress_key_prefix + "claimed"
    try:
        await enqueue(
            pool, run_args("claimed", "claimed", "echo", {"text": "x" * 30, "delay": 0.1})
        )
        async with running_worker(quick) as worker:
            assert isinstance(worker, ClaimingWorker)
            await eventually_async(lambda: redis.exists(key), 10, "the job to be claimed")
            assert 0 < await redis.pttl(key) <= 1000  # not job_timeout + 10 s
            assert worker.claimed() == ["claimed"]
            await redis.delete(key)  # as a Redis restart would
            await eventually_async(lambda: redis.exists(key), 5, "the heartbeat to restore it")
            renewals = worker.claim_renewals
            await eventually(lambda: worker.claim_renewals >= renewals + 3, 5, "renewals")
            assert await redis.pttl(key) > 0  # still claimed after several claim lifetimes
            await wait_status(collections, "claimed", "succeeded", timeout=20)
            await eventually_async(lambda: _gone(redis, key), 5, "the claim to be released")
            assert worker.claimed() == []
    finally:
        await pool.aclose()
        await redis.aclose()


async def _gone(redis: Redis, key: str) -> bool:
    return not await redis.exists(key)


def test_claims_need_positive_times(settings: Settings) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        ClaimingWorker(functions=[lambda ctx: None], claim_ttl=0, heartbeat=1)


async def test_a_background_loop_that_dies_is_logged(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    assert settings.redis_url is not None

    async def broken(worker: object) -> None:
        raise RuntimeError("the loop broke")

    async def noop(ctx: object) -> None:
        return None

    worker = ClaimingWorker(
        functions=[func(noop, name="noop")],
        redis_settings=RedisSettings.from_dsn(settings.redis_url.get()),
        burst=True,
        poll_delay=0,
        handle_signals=False,
        claim_ttl=1,
        heartbeat=0.5,
        loops=[broken],
    )
    with caplog.at_level(logging.ERROR, logger="worker.claims"):
        try:
            await asyncio.wait_for(worker.async_run(), 20)
        finally:
            await close_worker(worker)
    assert "worker-loop-0 stopped" in caplog.text
    assert "the loop broke" in caplog.text
