"""The run job: one agent run, from its record to exactly one terminal event.

Lifecycle: `run.queued` (written by the enqueuer; by the job when a plain-arq enqueuer left no
record), `run.started` (once per attempt, with its number), the agent's events, then one of
`run.completed`, `run.failed`, `run.cancelled` or `run.timed_out`. The record moves first (a
guarded findOneAndUpdate), then the terminal event is written with the fixed id "<run_id>~end"
(app.store.runs.run_event_id),
so a crash between the two is repaired by the retry and a run never shows two endings.

Cancellation reaches the job as CancelledError from arq: an abort (POST /cancel), the time
limit (arq's job_timeout = JOB_TIME_LIMIT) or the worker shutting down. The job tells them
apart by the worker's stop flag, the record's cancel request and the elapsed time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Coroutine, Sequence
from typing import Any

from arq import Retry
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from app.jobs import RunArgs, parse_args
from app.logs import log_context
from app.metrics import WorkerMetrics
from app.migrations import migrate
from app.mongo import Collections, Document, connect
from app.settings import Settings
from app.store.events import EventWriter, NewEvent
from app.store.messages import MessageStore
from app.store.runs import TERMINAL_EVENT, RunStatus, RunStore, error_info, run_event_id
from worker.agents import Registry
from worker.runtime import AgentContext, Emitter

logger = logging.getLogger(__name__)

STATE_KEY = "agentstream"
MAX_BACKOFF = 60.0


@dataclasses.dataclass(frozen=True, slots=True)
class Stores:
    mongo: AsyncMongoClient[Document]
    collections: Collections
    writer: EventWriter
    runs: RunStore
    messages: MessageStore


@dataclasses.dataclass(slots=True)
class WorkerState:
    """What every job of one worker process shares; opened by arq's on_startup."""

    settings: Settings
    registry: Registry
    name: str
    mongo_listeners: Sequence[Any] = ()
    metrics: WorkerMetrics = dataclasses.field(default_factory=WorkerMetrics)
    stopping: bool = False
    _stores: Stores | None = None

    @property
    def opened(self) -> bool:
        return self._stores is not None

    @property
    def stores(self) -> Stores:
        if self._stores is None:
            raise RuntimeError("the worker's MongoDB client is not open")
        return self._stores

    async def open(self) -> None:
        if self.settings.mongo_url is None:
            raise RuntimeError("MONGO_URL must be set")
        mongo = connect(self.settings.mongo_url.get(), event_listeners=list(self.mongo_listeners))
        collections = Collections.of(mongo, self.settings.mongo_db)
        if self.settings.migrate_on_startup:
            # Idempotency rests on the unique event_id and message_id indexes.
            await migrate(collections, self.settings)
        self._stores = Stores(
            mongo=mongo,
            collections=collections,
            writer=EventWriter(
                collections,
                max_event_bytes=self.settings.event_max_bytes,
                on_insert=self.metrics.observe_insert,
            ),
            runs=RunStore(collections),
            messages=MessageStore(collections),
        )

    async def close(self) -> None:
        stores, self._stores = self._stores, None
        if stores is not None:
            await stores.mongo.close()

    def stop(self, signal: object = None) -> None:
        """arq's on_stop: from now on a cancelled job is handed back to the queue."""
        self.stopping = True


async def run_agent(ctx: dict[str, Any], payload: object) -> str:
    """The ARQ job function (`app.jobs.JOB_FUNCTION`); returns the run's final status."""
    state: WorkerState = ctx[STATE_KEY]
    args = parse_args(payload)
    if ctx.get("job_id") != args["run_id"]:
        logger.warning(
            "job %s carries run %s: enqueue with _job_id=run_id so a run is queued once",
            ctx.get("job_id"),
            args["run_id"],
        )
    with log_context(session_id=args["session_id"], run_id=args["run_id"]):
        job = RunJob(state, args, attempt=int(ctx.get("job_try") or 1))
        return await job.execute()


class RunJob:
    def __init__(self, state: WorkerState, args: RunArgs, *, attempt: int) -> None:
        self.state = state
        self.settings = state.settings
        self.stores = state.stores
        self.args = args
        self.run_id = args["run_id"]
        self.session_id = args["session_id"]
        self.trace_id = args["trace_id"] or uuid.uuid4().hex
        self.attempt = attempt
        self._finalized = False
        self._context_of_agent: AgentContext | None = None

    async def execute(self) -> str:
        began = time.monotonic()
        try:
            return await self._execute(began)
        except asyncio.CancelledError:
            if not self._finalized:  # cancelled outside the agent: before it, or while ending
                await self._on_cancel(began, None)
            raise

    async def _execute(self, began: float) -> str:
        runs = self.stores.runs
        record, created = await runs.ensure(
            self.run_id, self.session_id, self.args["agent"], self.trace_id
        )
        if record["session_id"] != self.session_id:
            raise ValueError(f"run {self.run_id} belongs to session {record['session_id']}")
        self.trace_id = record.get("trace_id") or self.trace_id
        with log_context(trace_id=self.trace_id):
            if created:  # enqueued by plain arq: the job records what the enqueuer did not
                await self._append("queued", "run.queued", self._about())
            if RunStatus(record["status"]).terminal:
                return await self._repair_end(record)
            if record.get("cancel_requested_at") is not None:
                return await self._end(RunStatus.CANCELLED, None, None)
            tries = self.settings.job_max_tries
            if self.attempt > tries:  # redelivered after crashes: arq allows one more try
                error = {"type": "RetriesExhausted", "message": f"gave up after {tries} tries"}
                return await self._end(RunStatus.FAILED, error, None)
            started = await runs.start(self.run_id, worker=self.state.name)
            if started is None:  # ended between the two reads (cancelled while queued)
                ended = await runs.get(self.run_id)
                assert ended is not None
                return await self._repair_end(ended)
            number = int(started.get("attempts", 1))
            skip = await runs.event_ids(self.session_id, self.run_id) if number > 1 else set()
            return await self._run_agent(began, skip, number)

    async def _run_agent(self, began: float, skip: set[str], number: int) -> str:
        settings = self.settings
        async with Emitter(
            self.stores.writer,
            self.session_id,
            interval=settings.emit_flush_interval,
            max_events=settings.emit_flush_events,
            skip=skip,
        ) as emitter:
            # One run.started per attempt, numbered by the record (which survives a Redis
            # restart, unlike arq's try counter): "<run_id>~started", "<run_id>~started.2", ...
            step = "started" if number == 1 else f"started.{number}"
            started = self._event(step, "run.started", self._about(attempt=number))
            try:
                await emitter.emit(started)
                agent = self.state.registry.load(self.args["agent"])
                if agent.validate is not None:
                    agent.validate(self.args["input"])
                logger.info("run %s: agent %s started", self.run_id, self.args["agent"])
                self._context_of_agent = self._context(emitter)
                await agent.run(self._context_of_agent)
                if _cancelling():
                    raise asyncio.CancelledError  # the agent swallowed a cancellation
                await emitter.flush()
            except asyncio.CancelledError:
                await self._on_cancel(began, emitter)
                raise
            except Exception as exc:
                if _infrastructure(exc) and self.attempt < settings.job_max_tries:
                    defer = min(2.0**self.attempt, MAX_BACKOFF)
                    logger.warning(
                        "run %s: %s on attempt %d, retrying in %gs: %s",
                        self.run_id,
                        type(exc).__name__,
                        self.attempt,
                        defer,
                        exc,
                    )
                    raise Retry(defer=defer) from exc
                logger.info("run %s failed: %s: %s", self.run_id, type(exc).__name__, exc)
                return await _shielded(self._end(RunStatus.FAILED, error_info(exc), emitter))
            return await _shielded(self._end(RunStatus.SUCCEEDED, None, emitter))

    async def _on_cancel(self, began: float, emitter: Emitter | None) -> None:
        """End the run as cancelled or timed out, or leave it to a retry if the worker stops."""
        self._finalized = True
        outcome = await self._cancel_outcome(began)
        if outcome is None:
            logger.info("run %s: worker stopping, the run goes back to the queue", self.run_id)
            if emitter is not None:
                await _quietly(emitter.flush())  # what it wrote is kept; the retry skips it
            return
        error = None
        if outcome is RunStatus.TIMED_OUT:
            limit = self.settings.job_time_limit
            error = {"type": "TimeoutError", "message": f"the run exceeded {limit:g}s"}
        await _shielded(self._end(outcome, error, emitter))

    def _context(self, emitter: Emitter) -> AgentContext:
        return AgentContext(
            run_id=self.run_id,
            session_id=self.session_id,
            trace_id=self.trace_id,
            agent=self.args["agent"],
            input=self.args["input"],
            attempt=self.attempt,
            settings=self.settings,
            emitter=emitter,
            messages=self.stores.messages,
        )

    async def _cancel_outcome(self, began: float) -> RunStatus | None:
        """Why the job was cancelled: None when the worker is stopping (hand the run back)."""
        if self.state.stopping:
            return None
        try:
            record = await self.stores.runs.get(self.run_id)
        except PyMongoError:
            record = None
        if record is not None and record.get("cancel_requested_at") is not None:
            return RunStatus.CANCELLED
        limit = self.settings.job_time_limit
        if time.monotonic() - began >= limit - min(1.0, limit / 2):
            return RunStatus.TIMED_OUT
        return RunStatus.CANCELLED  # an abort from a plain-arq client (Job.abort)

    async def _end(
        self, status: RunStatus, error: dict[str, str] | None, emitter: Emitter | None
    ) -> str:
        """Flush the agent's events, move the record to `status`, write the one terminal event."""
        self._finalized = True
        if self._context_of_agent is not None and status is not RunStatus.SUCCEEDED:
            # A message the agent was streaming is closed, marked incomplete, with what it said.
            await _quietly(self._context_of_agent.close_open_messages(status.value))
        if emitter is not None and status is not RunStatus.SUCCEEDED:
            await _quietly(emitter.flush())  # what the agent wrote before failing still counts
        ended = await self.stores.runs.finish(self.run_id, status, error)
        if ended is None:  # someone else ended the run first (or it was never recorded)
            ended = await self.stores.runs.get(self.run_id)
            if ended is None:
                return status.value
        else:
            self._observe(ended)
        await self._append_end(ended)
        logger.info("run %s ended: %s", self.run_id, ended["status"])
        return str(ended["status"])

    def _observe(self, ended: Document) -> None:
        started, finished = ended.get("started_at"), ended.get("ended_at")
        seconds = (finished - started).total_seconds() if started and finished else None
        status = str(ended["status"])
        reason = None
        if status != RunStatus.SUCCEEDED.value:
            reason = (ended.get("error") or {}).get("type") or status
        self.state.metrics.observe_run(self.args["agent"], status, seconds, reason)

    async def _repair_end(self, record: Document) -> str:
        """The run ended earlier: make sure its terminal event exists, then stop."""
        self._finalized = True
        if not await self.stores.runs.has_event(run_event_id(self.run_id, "end")):
            await self._append_end(record)
        return str(record["status"])

    async def _append_end(self, record: Document) -> None:
        status = RunStatus(record["status"])
        data: dict[str, Any] = {"run_id": self.run_id, "status": status.value}
        if record.get("error"):
            data["error"] = record["error"]
        await self._append("end", TERMINAL_EVENT[status], data)

    def _about(self, **extra: Any) -> dict[str, Any]:
        return {"run_id": self.run_id, "agent": self.args["agent"], **extra}

    def _event(self, step: str, type: str, data: dict[str, Any]) -> NewEvent:
        return NewEvent(type, data, self.trace_id, run_event_id(self.run_id, step))

    async def _append(self, step: str, type: str, data: dict[str, Any]) -> None:
        await self.stores.writer.append(self.session_id, [self._event(step, type, data)])


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _infrastructure(exc: BaseException) -> bool:
    """Errors of the service's own backends, worth a retry (not the agent's own failures)."""
    return isinstance(exc, PyMongoError | RedisError)


async def _quietly(awaitable: Coroutine[Any, Any, None]) -> None:
    try:
        await awaitable
    except Exception:
        logger.warning("could not write buffered events", exc_info=True)


async def _shielded[T](awaitable: Coroutine[Any, Any, T]) -> T:
    """Run `awaitable` to the end even if this task is cancelled again meanwhile."""
    task = asyncio.ensure_future(awaitable)
    interrupted = False
    while True:
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                raise
            interrupted = True
            continue
        break
    if interrupted:
        raise asyncio.CancelledError
    return result
