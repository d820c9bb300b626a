"""arq's Worker with short, heartbeat-renewed job claims: a dead worker's runs move in seconds.

arq claims a job by setting `arq:in-progress:<job_id>` before running it, and no other worker
takes a job while that key exists. arq gives the key the job's whole time limit + 10 s, so a
worker killed mid-run (SIGKILL, lost host) left its run silent for JOB_TIME_LIMIT + 10 s.

`ClaimingWorker` changes one number and adds one loop, through arq's own attributes:
- the claim lives WORKER_CLAIM_TTL seconds (arq's `in_progress_timeout_s`, which arq uses only
  as that key's expiry);
- a heartbeat task re-sets the claim of every job still running in this process every
  WORKER_HEARTBEAT seconds (a plain SET with the expiry, so it also restores claims that a Redis
  restart wiped);
- a Redis error in a poll iteration is logged and the next iteration tries again, instead of
  ending the worker (and cancelling its runs) on the first failed command.

Invariant: while this process lives and reaches Redis, its running jobs stay claimed; within
WORKER_CLAIM_TTL of its death they are free, and the next poll of another worker takes them
(arq counts that as the job's next try).

Background loops besides the heartbeat (the run reconciler) are passed in as `loops` and run
for as long as the worker's main task, which owns and awaits them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from arq.constants import in_progress_key_prefix
from arq.worker import Worker
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

Loop = Callable[[Worker], Coroutine[Any, Any, None]]

_LOG_EVERY = 10.0  # seconds between repeated "Redis unavailable" lines


class ClaimingWorker(Worker):
    def __init__(
        self,
        *args: Any,
        claim_ttl: float,
        heartbeat: float,
        loops: Sequence[Loop] = (),
        **kwargs: Any,
    ) -> None:
        if claim_ttl <= 0 or heartbeat <= 0:
            raise ValueError("claim_ttl and heartbeat must be positive")
        super().__init__(*args, **kwargs)
        self.claim_ttl = claim_ttl
        self.heartbeat_interval = min(heartbeat, claim_ttl / 2)
        self.in_progress_timeout_s = claim_ttl  # the expiry arq gives a new claim
        self.claim_renewals = 0
        self._loops = tuple(loops)
        self._redis_failed_at: float | None = None

    def claimed(self) -> list[str]:
        """Ids of the jobs whose function is running in this process now."""
        return [job_id for job_id, task in self.job_tasks.items() if not task.done()]

    async def renew_claims(self) -> int:
        """Re-set this process's claims with a fresh expiry; return how many."""
        job_ids = self.claimed()
        if not job_ids or self._pool is None:
            return 0
        ttl_ms = max(1, int(self.claim_ttl * 1000))
        async with self.pool.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.set(in_progress_key_prefix + job_id, b"1", px=ttl_ms)
            await pipe.execute()
        self.claim_renewals += 1
        return len(job_ids)

    async def main(self) -> None:
        tasks = [asyncio.create_task(self._heartbeat(), name="claims-heartbeat")]
        tasks += [
            asyncio.create_task(loop(self), name=f"worker-loop-{n}")
            for n, loop in enumerate(self._loops)
        ]
        for task in tasks:
            task.add_done_callback(_report_crash)
        try:
            await super().main()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            try:
                await self.renew_claims()
            except (RedisError, OSError) as exc:
                self._redis_trouble("could not renew job claims", exc)

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except (RedisError, OSError) as exc:
            self._redis_trouble("poll failed, trying again", exc)
        else:
            if self._redis_failed_at is not None:
                logger.info("Redis reachable again")
                self._redis_failed_at = None

    def _redis_trouble(self, what: str, exc: BaseException) -> None:
        now = time.monotonic()
        if self._redis_failed_at is None or now - self._redis_failed_at >= _LOG_EVERY:
            logger.warning("Redis unavailable: %s: %s: %s", what, type(exc).__name__, exc)
            self._redis_failed_at = now


def _report_crash(task: asyncio.Task[None]) -> None:
    """A background loop must not die unnoticed (a dead heartbeat hands runs to others)."""
    if not task.cancelled() and task.exception() is not None:
        logger.error("%s stopped", task.get_name(), exc_info=task.exception())
