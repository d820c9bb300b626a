"""The run reconciler: ends runs that no live worker owns, so no record stays active forever.

Every worker runs the loop; a Redis lock lets one pass run at a time. A pass reads the
queued and running records (index status_created) and, for each, asks Redis two things:
- owned: its job is claimed (`arq:in-progress:<run_id>`, kept alive by the owner's heartbeat,
  see worker/claims.py);
- queued: its job is still on the queue (arq keeps a job there until it ends, and re-queues a
  run whose worker died or stopped).

An unowned run is ended when:
- its cancel was requested (arq drops an aborted job without calling the job when a worker
  picks it up, so nobody else would): `cancelled`;
- its job is gone (an arq failure outside the job, a Redis restart without persistence, the
  job's own error while ending): `timed_out` when its attempt has run past JOB_TIME_LIMIT,
  else `failed` with error type `JobLost`.
A run whose job still waits on the queue is left to arq: a worker will run it.

A run is ended only after it has been seen unowned for two heartbeat intervals (first sighting
kept in Redis, `agentstream:unowned:<run_id>`): a Redis that just restarted has lost every
claim, and the live owners' heartbeats restore theirs within one interval.

Ending is the same two steps as a worker's: the record moves first (guarded on the status
and attempt that were seen, so a worker that took the run meanwhile keeps it), then the one
terminal event with the fixed id "<run_id>~end" (app.store.runs.run_event_id).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from typing import Any

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from pymongo.errors import PyMongoError
from redis.exceptions import LockError, RedisError

from app.jobs import QUEUE_NAME
from app.metrics import WorkerMetrics
from app.mongo import Document
from app.store.events import Clock, EventWriter, utc_now
from app.store.runs import RunStatus, RunStore, terminal_event
from worker.jobs import WorkerState

logger = logging.getLogger(__name__)

LOCK_KEY = "agentstream:reconciler"
UNOWNED_PREFIX = "agentstream:unowned:"
BATCH = 500  # records read per query; a pass pages through every active run


class Reconciler:
    def __init__(
        self,
        *,
        redis: ArqRedis,
        runs: RunStore,
        writer: EventWriter,
        time_limit: float,
        confirm: float,
        metrics: WorkerMetrics | None = None,
        clock: Clock = utc_now,
        batch: int = BATCH,
    ) -> None:
        self._redis = redis
        self._runs = runs
        self._writer = writer
        self._time_limit = time_limit
        self._confirm = confirm
        self._metrics = metrics
        self._clock = clock
        self._batch = batch

    async def run_once(self, *, lock_timeout: float = 60.0) -> list[tuple[str, RunStatus]] | None:
        """One pass under the lock; None when another worker holds it."""
        lock = self._redis.lock(LOCK_KEY, timeout=lock_timeout, blocking=False)
        if not await lock.acquire():
            return None
        try:
            return await self.reconcile()
        finally:
            with contextlib.suppress(LockError):  # expired meanwhile: another pass may run
                await lock.release()

    async def reconcile(self) -> list[tuple[str, RunStatus]]:
        """One pass (without the lock): the runs it ended, with their new status."""
        now = self._clock()
        before = now - datetime.timedelta(seconds=self._confirm)
        ended: list[tuple[str, RunStatus]] = []
        seen: set[str] = set()
        page = await self._runs.active(created_before=before, limit=self._batch)
        while page:
            records = [r for r in page if r["run_id"] not in seen]
            seen.update(r["run_id"] for r in records)
            for record, outcome in zip(records, await self._outcomes(records, now), strict=True):
                if outcome is not None and await self._confirmed(record["run_id"]):
                    status, error = outcome
                    if await self._end(record, status, error):
                        ended.append((record["run_id"], status))
            if len(page) < self._batch or not records:
                break
            page = await self._runs.active(
                created_before=before, limit=self._batch, from_created=page[-1]["created_at"]
            )
        return ended

    async def _outcomes(
        self, records: list[Document], now: datetime.datetime
    ) -> list[tuple[RunStatus, dict[str, str] | None] | None]:
        if not records:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for record in records:
                pipe.exists(in_progress_key_prefix + record["run_id"])
                pipe.zscore(QUEUE_NAME, record["run_id"])
            found = await pipe.execute()
        outcomes = []
        settled: list[str] = []
        for n, record in enumerate(records):
            owned, score = bool(found[2 * n]), found[2 * n + 1]
            outcome = None if owned else self._decide(record, score is not None, now)
            if outcome is None:
                settled.append(record["run_id"])
            outcomes.append(outcome)
        if settled:
            await self._redis.delete(*(UNOWNED_PREFIX + run_id for run_id in settled))
        return outcomes

    def _decide(
        self, record: Document, queued: bool, now: datetime.datetime
    ) -> tuple[RunStatus, dict[str, str] | None] | None:
        if record.get("cancel_requested_at") is not None:
            return RunStatus.CANCELLED, None
        if queued:
            return None
        began = record.get("attempt_started_at") or record.get("started_at")
        running = record["status"] == RunStatus.RUNNING
        if (
            running
            and began is not None
            and (now - _aware(began)).total_seconds() >= self._time_limit
        ):
            limit = self._time_limit
            return RunStatus.TIMED_OUT, {
                "type": "TimeoutError",
                "message": f"the run exceeded {limit:g}s",
            }
        return RunStatus.FAILED, {
            "type": "JobLost",
            "message": "the run's job left the queue without ending the run",
        }

    async def _confirmed(self, run_id: str) -> bool:
        """True once the run has been seen unowned for `confirm` seconds."""
        key = UNOWNED_PREFIX + run_id
        now_ms = int(time.time() * 1000)
        ttl_ms = int(self._confirm * 3000) + 60_000
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(key, str(now_ms), nx=True, px=ttl_ms)
            pipe.get(key)
            _, first = await pipe.execute()
        return first is not None and now_ms - int(first) >= self._confirm * 1000

    async def _end(self, record: Document, status: RunStatus, error: dict[str, str] | None) -> bool:
        run_id = record["run_id"]
        ended = await self._runs.abandon(record, status, error)
        await self._redis.delete(UNOWNED_PREFIX + run_id)
        if ended is None:  # a worker took or ended it meanwhile
            return False
        await self._writer.append(ended["session_id"], [terminal_event(ended, status, error)])
        logger.warning(
            "run %s (session %s): no live worker owned it; ended %s",
            run_id,
            ended["session_id"],
            status.value,
        )
        if self._metrics is not None:
            self._metrics.runs_reconciled.labels(status.value).inc()
            reason = (error or {}).get("type") or status.value
            self._metrics.observe_run(str(ended.get("agent")), status.value, None, reason)
        return True


async def reconcile_forever(worker: Any, state: WorkerState) -> None:
    """The worker's loop (see ClaimingWorker's `loops`): a pass every RECONCILE_INTERVAL
    seconds once the worker is connected; a failed pass is logged and the next one tries again."""
    settings = state.settings
    interval = settings.reconcile_interval
    heartbeat = min(settings.worker_heartbeat, settings.worker_claim_ttl / 2)
    reconciler: Reconciler | None = None
    while True:
        await asyncio.sleep(interval)
        if reconciler is None:
            if not state.opened or worker.pool is None:
                continue
            reconciler = Reconciler(
                redis=worker.pool,
                runs=state.stores.runs,
                writer=state.stores.writer,
                time_limit=settings.job_time_limit,
                confirm=2 * heartbeat,
                metrics=state.metrics,
            )
        try:
            await reconciler.run_once(lock_timeout=max(60.0, interval * 4))
        except (RedisError, PyMongoError, OSError) as exc:
            logger.warning("reconciler pass failed: %s: %s", type(exc).__name__, exc)


def _aware(value: datetime.datetime) -> datetime.datetime:
    """PyMongo returns naive UTC datetimes unless tz_aware; compare them as UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=datetime.UTC)
