"""Starting, reading and cancelling runs: the one path by which the app enqueues agent runs.

A run is recorded (`queued`) and its `run.queued` event written before its job is enqueued,
so the worker always finds the record and the stream always starts with `run.queued`.
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

import orjson
from redis.exceptions import RedisError

from app import jobs
from app.errors import BadRequest, Conflict, NotFound, PayloadTooLarge, ServiceUnavailable
from app.store.events import NewEvent
from app.store.runs import RunStatus, RunStore, error_info, run_event_id, terminal_event
from app.validation import identifier, json_object, optional_identifier
from worker.agents import AgentLoadError, Registry
from worker.runtime import InputError

if TYPE_CHECKING:
    from arq.connections import ArqRedis

    from app.mongo import Collections, Document
    from app.settings import Settings
    from app.store.events import EventWriter

logger = logging.getLogger(__name__)


class UnknownAgent(BadRequest):
    code = "unknown_agent"


class InvalidInput(BadRequest):
    code = "invalid_input"


class Runs:
    def __init__(
        self,
        *,
        settings: Settings,
        collections: Collections,
        writer: EventWriter,
        redis: ArqRedis,
    ) -> None:
        self._settings = settings
        self._store = RunStore(collections)
        self._writer = writer
        self._redis = redis
        self._registry = Registry.from_settings(settings)
        for problem in self._registry.problems():
            # The agent's code may live only in the workers' image: they refuse to start.
            logger.warning("%s; runs of it will fail unless the workers can load it", problem)

    async def start(
        self,
        session_id: str,
        agent: object,
        input: object,
        *,
        trace_id: object = None,
        run_id: object = None,
        sub: str | None = None,
    ) -> Document:
        """Validate, record the run as queued, write `run.queued`, enqueue; return the record.

        Starting a run again with the same run_id returns the existing record.
        """
        identifier(session_id, "session_id")
        name = self._agent(agent)
        payload = self._input(name, input)
        trace = optional_identifier(trace_id, "trace_id") or uuid.uuid4().hex
        rid = optional_identifier(run_id, "run_id") or uuid.uuid4().hex
        if len(rid) > jobs.RUN_ID_MAX:
            raise BadRequest(f"run_id must be at most {jobs.RUN_ID_MAX} characters")
        record, created = await self._store.ensure(rid, session_id, name, trace, sub=sub)
        if not created:
            if (record["session_id"], record["agent"]) != (session_id, name):
                raise Conflict(f"run_id {rid} is already used by another run")
            if record["status"] != RunStatus.QUEUED:
                return record
            # A retried request: finish what the first one may not have (both steps are
            # idempotent), then enqueue, which is harmless when the job is already queued.
            trace = record.get("trace_id") or trace
        queued_id = run_event_id(rid, "queued")
        if created or not await self._store.has_event(queued_id):
            queued = NewEvent("run.queued", {"run_id": rid, "agent": name}, trace, queued_id)
            await self._writer.append(session_id, [queued])
        args = jobs.run_args(rid, session_id, name, payload, trace)
        try:
            await jobs.enqueue(self._redis, args)
        except (RedisError, OSError) as exc:
            logger.error("run %s: could not enqueue: %s", rid, exc)
            await self._end(rid, RunStatus.FAILED, error_info(exc, f"could not enqueue: {exc}"))
            raise ServiceUnavailable("the run queue (Redis) is unavailable") from exc
        logger.info("run %s queued: agent %s, session %s", rid, name, session_id)
        return record

    async def find(self, run_id: str) -> Document | None:
        return await self._store.get(identifier(run_id, "run_id"))

    async def get(self, run_id: str) -> Document:
        record = await self.find(run_id)
        if record is None:
            raise NotFound(f"no run {run_id}")
        return record

    async def cancel(self, run_id: str) -> tuple[bool, Document]:
        """Cancel a queued or running run: (True, record) when it ended now, (False, record)
        when the worker was asked to end it. Conflict when it has already ended."""
        record = await self.get(run_id)
        status = RunStatus(record["status"])
        if status is RunStatus.QUEUED:
            ended = await self._end(run_id, RunStatus.CANCELLED, None, only_from=RunStatus.QUEUED)
            if ended is not None:
                await jobs.abort(self._redis, run_id)  # the job, when picked, never starts
                return True, ended
            record = await self.get(run_id)  # it started meanwhile
            status = RunStatus(record["status"])
        if status is RunStatus.RUNNING:
            requested = await self._store.request_cancel(run_id)
            if requested is not None:
                await jobs.abort(self._redis, run_id)
                return False, requested
            record = await self.get(run_id)  # it ended meanwhile
        raise Conflict(f"run {run_id} has already ended: {record['status']}")

    async def _end(
        self,
        run_id: str,
        status: RunStatus,
        error: dict[str, str] | None,
        *,
        only_from: RunStatus | None = None,
    ) -> Document | None:
        """Move the record to a terminal status, then write the run's one terminal event."""
        allowed = (only_from,) if only_from is not None else (RunStatus.QUEUED, RunStatus.RUNNING)
        ended = await self._store.finish(run_id, status, error, only_from=allowed)
        if ended is None:
            return None
        await self._writer.append(ended["session_id"], [terminal_event(ended, status, error)])
        return ended

    def _agent(self, value: object) -> str:
        if not isinstance(value, str):
            raise BadRequest("agent must be a string naming a registered agent")
        if value not in self._registry:
            known = ", ".join(self._registry.names())
            raise UnknownAgent(f"unknown agent {value[:64]!r}; known agents: {known}")
        return value

    def _input(self, agent: str, value: object) -> dict[str, Any]:
        payload = json_object(value, "input")
        size = len(orjson.dumps(payload))
        limit = self._settings.event_max_bytes
        if size > limit:
            raise PayloadTooLarge(f"input is {size} bytes; the limit is {limit} (EVENT_MAX_BYTES)")
        try:
            self._registry.validate(agent, payload)
        except InputError as exc:
            raise InvalidInput(str(exc)) from None
        except AgentLoadError as exc:
            # Its code may live only in the worker's image: the worker reports it on the run.
            logger.warning("input of agent %s not checked here: %s", agent, exc)
        return payload
