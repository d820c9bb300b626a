"""The public job contract between services that enqueue agent runs and the worker.

A run is one ARQ job on the queue `QUEUE_NAME`, calling the function `JOB_FUNCTION` with one
positional argument, a JSON object:

    {"run_id": str, "session_id": str, "agent": str, "input": {...}, "trace_id": str | None}

The job id is the run id, so enqueueing the same run twice is harmless. Jobs and results are
JSON (orjson), never pickle: pickle would let anyone who can write to Redis run code in the
worker. A service that only has arq and orjson enqueues with
`job_serializer=orjson.dumps, job_deserializer=orjson.loads` (see the README, "The job contract").

This module imports nothing else from the app, so another service may vendor or import it alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any, TypedDict

import orjson
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.jobs import Job
from redis.asyncio import ConnectionPool
from redis.exceptions import RedisError

__all__ = [
    "JOB_FUNCTION",
    "QUEUE_NAME",
    "JobArgsError",
    "JobFailed",
    "NotJSONJob",
    "RunArgs",
    "abort",
    "arq_pool",
    "bind",
    "deserialize",
    "enqueue",
    "parse_args",
    "run_args",
    "serialize",
]

QUEUE_NAME = "agentstream:runs"
JOB_FUNCTION = "run_agent"
RUN_ID_MAX = 96  # event and message ids derive from it ("<run_id>~<n>") and must stay <= 128

_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_AGENT = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_EXCEPTION = "__exception__"
_CONNECT_TRIES = 6


class RunArgs(TypedDict):
    run_id: str
    session_id: str
    agent: str
    input: dict[str, Any]
    trace_id: str | None


class JobArgsError(ValueError):
    """A job's argument does not follow the contract."""


class JobFailed(Exception):
    """A job result that was an exception in the worker, rebuilt from its JSON form."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}" if message else type_name)
        self.type_name = type_name


def run_args(
    run_id: str,
    session_id: str,
    agent: str,
    input: dict[str, Any],
    trace_id: str | None = None,
) -> RunArgs:
    """The job argument for one run, checked against the contract."""
    return parse_args(
        {
            "run_id": run_id,
            "session_id": session_id,
            "agent": agent,
            "input": input,
            "trace_id": trace_id,
        }
    )


def parse_args(value: object) -> RunArgs:
    """Check a job argument as the worker receives it; raise JobArgsError naming the field."""
    if not isinstance(value, dict):
        raise JobArgsError("the job argument must be a JSON object")
    unknown = sorted(set(value) - set(RunArgs.__annotations__))
    if unknown:
        raise JobArgsError(f"unknown fields: {', '.join(map(str, unknown))}")
    run_id = _id(value.get("run_id"), "run_id")
    if len(run_id) > RUN_ID_MAX:
        raise JobArgsError(f"run_id must be at most {RUN_ID_MAX} characters")
    agent = value.get("agent")
    if not isinstance(agent, str) or not _AGENT.match(agent):
        raise JobArgsError("agent must be a name of 1-64 characters from [a-z0-9_-]")
    payload = value.get("input", {})
    if not isinstance(payload, dict):
        raise JobArgsError("input must be a JSON object")
    trace_id = value.get("trace_id")
    return RunArgs(
        run_id=run_id,
        session_id=_id(value.get("session_id"), "session_id"),
        agent=agent,
        input=payload,
        trace_id=None if trace_id is None else _id(trace_id, "trace_id"),
    )


def _id(value: object, field: str) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise JobArgsError(f"{field} must be 1-128 characters from [A-Za-z0-9._:-]")
    return value


def serialize(data: dict[str, Any]) -> bytes:
    """ARQ's job and result dicts as JSON; an exception result becomes {type, message}."""
    return orjson.dumps(data, default=_encode_exception)


class NotJSONJob(ValueError):
    """A job that is not JSON: enqueued with arq's default serializer, pickle."""

    def __init__(self) -> None:
        super().__init__(
            "the job is not JSON (arq's default serializer is pickle, which the worker refuses):"
            " enqueue with create_pool(..., job_serializer=orjson.dumps,"
            " job_deserializer=orjson.loads), or app.jobs.arq_pool; see the README,"
            " 'The job contract'"
        )


def deserialize(raw: bytes) -> dict[str, Any]:
    """The inverse of `serialize`; plain `orjson.loads` also reads every job."""
    try:
        data: dict[str, Any] = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise NotJSONJob from None
    result = data.get("r")
    if isinstance(result, dict) and set(result) == {_EXCEPTION}:
        data["r"] = _decode_exception(result[_EXCEPTION])
    return data


def _encode_exception(value: object) -> object:
    if isinstance(value, BaseException):
        return {_EXCEPTION: {"type": type(value).__name__, "message": str(value)}}
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _decode_exception(value: object) -> BaseException:
    info = value if isinstance(value, dict) else {}
    type_name, message = str(info.get("type", "Exception")), str(info.get("message", ""))
    if type_name == "CancelledError":
        # arq's Job.abort() reports success by the result being a CancelledError.
        return asyncio.CancelledError(message)
    return JobFailed(type_name, message)


async def arq_pool(redis_url: str, *, timeout: float | None = None) -> ArqRedis:
    """An ARQ Redis pool speaking this contract: the JSON serializer and the runs queue.

    `timeout` (seconds), when given, bounds connecting and every command (redis-py's socket
    timeouts): a stalled Redis then raises redis.exceptions.TimeoutError instead of hanging.
    """
    if timeout is None:
        return await create_pool(
            RedisSettings.from_dsn(redis_url),
            job_serializer=serialize,
            job_deserializer=deserialize,
            default_queue_name=QUEUE_NAME,
        )
    pool = ConnectionPool.from_url(
        redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
    )
    redis = ArqRedis(
        pool,
        job_serializer=serialize,
        job_deserializer=deserialize,
        default_queue_name=QUEUE_NAME,
    )
    redis.auto_close_connection_pool = True
    try:
        for attempt in range(_CONNECT_TRIES):  # like arq's create_pool: Redis may be starting
            try:
                await redis.ping()
                break
            except (RedisError, OSError):
                if attempt == _CONNECT_TRIES - 1:
                    raise
                await asyncio.sleep(1.0)
    except BaseException:
        await redis.aclose()
        raise
    return redis


def bind(redis: ArqRedis) -> ArqRedis:
    """`redis` when it already speaks the contract, else a view on its connection pool that does."""
    if redis.job_serializer is serialize and redis.job_deserializer is deserialize:
        return redis
    return ArqRedis(
        redis.connection_pool,
        job_serializer=serialize,
        job_deserializer=deserialize,
        default_queue_name=QUEUE_NAME,
    )


async def enqueue(redis: ArqRedis, args: RunArgs) -> Job | None:
    """Enqueue a run; None when a job with this run id is already queued or finished."""
    return await bind(redis).enqueue_job(
        JOB_FUNCTION, dict(args), _job_id=args["run_id"], _queue_name=QUEUE_NAME
    )


async def abort(redis: ArqRedis, run_id: str) -> None:
    """Ask the worker to abort a run's job (arq's Job.abort), without waiting for it to end."""
    job = Job(run_id, bind(redis), _queue_name=QUEUE_NAME, _deserializer=deserialize)
    # TimeoutError: still running; JobFailed: already ended. The run record tells which.
    with contextlib.suppress(TimeoutError, JobFailed):
        await job.abort(timeout=0, poll_delay=0.01)
