"""The ARQ worker, built from the settings object.

- `max_jobs` = WORKER_CONCURRENCY, `job_timeout` = JOB_TIME_LIMIT. A run gets JOB_MAX_TRIES
  tries: the job asks for a retry with exponential backoff when MongoDB or Redis fails, and
  ends a run `failed` itself when crashes redelivered it more often (arq's `max_tries` is one
  higher, so arq never drops a run without the job recording why).
- Jobs and results are JSON (`app.jobs.serialize`), never pickle.
- Aborts are allowed: POST /v1/runs/{id}/cancel aborts the run's job.
- SIGTERM: the worker stops taking jobs, lets running ones finish for SHUTDOWN_GRACE seconds,
  then cancels the rest, which go back to the queue and run again on another worker.
- A job whose worker died (SIGKILL, lost host) runs again within WORKER_CLAIM_TTL seconds:
  the worker's claims are short and renewed by a heartbeat (worker/claims.py).
- Every RECONCILE_INTERVAL seconds one worker (a Redis lock) ends the runs that no live worker
  owns (worker/reconciler.py).
- Health: every HEALTH_CHECK_INTERVAL seconds the worker writes a key named after its host,
  which `worker --check` reads.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import warnings
from collections.abc import Sequence
from typing import Any

from arq.connections import RedisSettings
from arq.worker import Worker, func

from app.jobs import JOB_FUNCTION, QUEUE_NAME, NotJSONJob, deserialize, serialize
from app.metrics import WorkerMetrics
from app.settings import Settings
from worker.agents import Registry
from worker.claims import ClaimingWorker, Loop
from worker.jobs import STATE_KEY, WorkerState, run_agent
from worker.reconciler import reconcile_forever

HEALTH_CHECK_INTERVAL = 10.0
KEEP_RESULT_SECONDS = 3600


class _NotJSONJobs(logging.Filter):
    """arq logs a job it cannot read with a traceback; for a pickled one, say what to do."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        cause = error.__cause__ if error is not None else None
        if isinstance(cause, NotJSONJob) and isinstance(record.args, tuple) and record.args:
            record.msg = "job %s refused: %s"
            record.args = (record.args[0], cause)
            record.exc_info = None
            record.exc_text = None
        return True


def _explain_not_json_jobs() -> None:
    arq_logger = logging.getLogger("arq.worker")
    if not any(isinstance(found, _NotJSONJobs) for found in arq_logger.filters):
        arq_logger.addFilter(_NotJSONJobs())


def health_check_key(host: str | None = None) -> str:
    """One key per host: a container's health probe checks its own worker."""
    return f"{QUEUE_NAME}:health-check:{host or socket.gethostname()}"


def redis_settings(settings: Settings) -> RedisSettings:
    if settings.redis_url is None:
        raise ValueError("REDIS_URL must be set")
    return RedisSettings.from_dsn(settings.redis_url.get())


def worker_options(settings: Settings, state: WorkerState) -> dict[str, Any]:
    """The keyword arguments of arq's Worker for these settings."""

    async def startup(ctx: dict[str, Any]) -> None:
        await ctx[STATE_KEY].open()

    async def shutdown(ctx: dict[str, Any]) -> None:
        await ctx[STATE_KEY].close()

    return {
        # One try more than JOB_MAX_TRIES: a run redelivered after its worker died that often
        # is ended `failed` by the job itself instead of being dropped with its record running.
        "functions": [func(run_agent, name=JOB_FUNCTION, max_tries=settings.job_max_tries + 1)],
        "queue_name": QUEUE_NAME,
        "redis_settings": redis_settings(settings),
        "max_jobs": settings.worker_concurrency,
        "job_timeout": settings.job_time_limit,
        "max_tries": settings.job_max_tries + 1,
        "retry_jobs": True,
        "allow_abort_jobs": True,
        "keep_result": KEEP_RESULT_SECONDS,
        "health_check_interval": HEALTH_CHECK_INTERVAL,
        "health_check_key": health_check_key(),
        "job_serializer": serialize,
        "job_deserializer": deserialize,
        "on_startup": startup,
        "on_shutdown": shutdown,
        "job_completion_wait": settings.shutdown_grace,
        "ctx": {STATE_KEY: state},
    }


def create_worker(
    settings: Settings,
    *,
    burst: bool = False,
    poll_delay: float = 0.5,
    handle_signals: bool = True,
    mongo_listeners: Sequence[Any] = (),
    metrics: WorkerMetrics | None = None,
) -> Worker:
    """An arq Worker for the runs queue. Call inside a running event loop."""
    if settings.mongo_url is None:
        raise ValueError("MONGO_URL must be set")
    _explain_not_json_jobs()
    state = WorkerState(
        settings=settings,
        registry=Registry.from_settings(settings),
        name=f"{socket.gethostname()}:{os.getpid()}",
        mongo_listeners=mongo_listeners,
        metrics=metrics or WorkerMetrics(),
    )
    loops: list[Loop] = []
    if settings.reconcile_interval > 0:
        loops.append(lambda worker: reconcile_forever(worker, state))
    worker = ClaimingWorker(
        **worker_options(settings, state),
        burst=burst,
        poll_delay=poll_delay,
        handle_signals=handle_signals,
        claim_ttl=settings.worker_claim_ttl,
        heartbeat=settings.worker_heartbeat,
        loops=loops,
    )
    worker.on_stop = state.stop
    return worker


async def close_worker(worker: Worker) -> None:
    """`worker.close()`: ends the jobs, deletes the health key, closes MongoDB and Redis.

    arq 0.28 closes its pool with redis-py's deprecated `close()`; that warning is arq's, so it
    is silenced here (tests turn warnings into errors).
    """
    # arq's close() cancels the running jobs, then gathers them without return_exceptions, so a
    # job cancelled while arq shields its bookkeeping makes close() raise before it deletes the
    # health key and closes the pools. Cancel and collect the jobs here first.
    for task in worker.tasks.values():
        task.cancel()
    await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
    worker.tasks.clear()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Call to deprecated close", DeprecationWarning)
        await worker.close()
