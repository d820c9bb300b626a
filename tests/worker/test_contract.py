"""The public job contract: JSON jobs, the argument shape, and the README's plain-arq example."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from arq import create_pool
from arq.connections import RedisSettings

from app import jobs
from app.mongo import Collections
from app.settings import Settings
from support.worker import (
    DOC,
    ROOT,
    burst,
    queue_length,
    session_events,
    snippet,
    types,
    wait_status,
)


def test_jobs_are_json_and_results_keep_their_exceptions() -> None:
    job = {"t": 1, "f": "run_agent", "a": [{"run_id": "r1"}], "k": {}, "et": 123}
    raw = jobs.serialize(job)
    assert orjson.loads(raw) == job  # a plain JSON reader sees the same job
    assert jobs.deserialize(raw) == job
    result = jobs.deserialize(jobs.serialize({"r": asyncio.CancelledError("stop"), "s": False}))
    assert isinstance(result["r"], asyncio.CancelledError)
    failed = jobs.deserialize(jobs.serialize({"r": ValueError("bad input")}))["r"]
    assert isinstance(failed, jobs.JobFailed)
    assert str(failed) == "ValueError: bad input"
    with pytest.raises(TypeError):
        jobs.serialize({"r": object()})


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([], "must be a JSON object"),
        ({"run_id": "r", "session_id": "s", "agent": "echo", "extra": 1}, "unknown fields"),
        ({"run_id": "a b", "session_id": "s", "agent": "echo"}, "run_id"),
        ({"run_id": "r" * 97, "session_id": "s", "agent": "echo"}, "at most 96"),
        ({"run_id": "r", "session_id": {}, "agent": "echo"}, "session_id"),
        ({"run_id": "r", "session_id": "s", "agent": "Echo!"}, "agent"),
        ({"run_id": "r", "session_id": "s", "agent": "echo", "input": "hi"}, "input"),
        ({"run_id": "r", "session_id": "s", "agent": "echo", "trace_id": 5}, "trace_id"),
    ],
)
def test_job_arguments_are_checked(payload: object, message: str) -> None:
    with pytest.raises(jobs.JobArgsError, match=message):
        jobs.parse_args(payload)


def test_the_contract_imports_without_the_rest_of_the_app() -> None:
    code = (
        "import sys, app.jobs\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('app.', 'worker')))\n"
        "assert loaded == ['app.jobs'], loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


async def test_the_documented_plain_arq_example_runs(
    settings: Settings, collections: Collections, tmp_path: Path
) -> None:
    """The README's snippet, run as a script of its own (no `python -m asyncio` needed)."""
    assert settings.redis_url is not None
    script = tmp_path / "enqueue.py"
    script.write_text(snippet("enqueue"))
    env = {**os.environ, "REDIS_URL": settings.redis_url.get()}
    done = subprocess.run(
        [sys.executable, str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip()
    redis = await create_pool(
        RedisSettings.from_dsn(settings.redis_url.get()),
        job_serializer=orjson.dumps,
        job_deserializer=orjson.loads,
    )
    try:
        assert await queue_length(settings) == 1
        # Enqueueing the same run again is harmless: the job id is the run id.
        again = await redis.enqueue_job(
            "run_agent",
            {"run_id": run_id, "session_id": "demo", "agent": "echo", "input": {"text": "x"}},
            _job_id=run_id,
            _queue_name=jobs.QUEUE_NAME,
        )
        assert again is None
        await burst(settings)
        record = await wait_status(collections, run_id, "succeeded", timeout=5)
        assert record["session_id"] == "demo"
        events = await session_events(collections, "demo")
        assert types(events) == [
            "run.queued",  # written by the job: a plain-arq enqueuer leaves no record
            "run.started",
            *["message.delta"] * 5,
            "message.completed",
            "run.completed",
        ]
        assert events[-2]["data"]["content"] == "hello"
        trace_ids = {e["trace_id"] for e in events}
        assert len(trace_ids) == 1
        assert None not in trace_ids
        assert trace_ids == {record["trace_id"]}
    finally:
        await redis.aclose()


async def test_app_jobs_helpers_enqueue_once(settings: Settings, collections: Collections) -> None:
    assert settings.redis_url is not None
    redis = await jobs.arq_pool(settings.redis_url.get())
    try:
        args = jobs.run_args("run-1", "s1", "echo", {"text": "ab"}, "trace-1")
        assert await jobs.enqueue(redis, args) is not None
        assert await jobs.enqueue(redis, args) is None
        await burst(settings)
    finally:
        await redis.aclose()
    record = await wait_status(collections, "run-1", "succeeded", timeout=5)
    assert record["trace_id"] == "trace-1"
    events = await session_events(collections, "s1")
    assert {e["trace_id"] for e in events} == {"trace-1"}
    assert [e["event_id"] for e in events] == [
        "run-1~queued",
        "run-1~started",
        "run-1~1",
        "run-1~2",
        "run-1~3",
        "run-1~end",
    ]


async def test_a_pickled_job_is_refused(
    settings: Settings, collections: Collections, caplog: pytest.LogCaptureFixture
) -> None:
    import pickle

    from arq import create_pool
    from arq.connections import RedisSettings

    assert settings.redis_url is not None
    redis = await create_pool(RedisSettings.from_dsn(settings.redis_url.get()))  # pickle
    try:
        await redis.enqueue_job(
            "run_agent",
            {"run_id": "p1", "session_id": "s", "agent": "echo", "input": {"text": "x"}},
            _job_id="p1",
            _queue_name=jobs.QUEUE_NAME,
        )
        raw = await redis.get("arq:job:p1")
        assert raw is not None
        assert pickle.loads(raw)["f"] == "run_agent"
        worker = await burst(settings)
    finally:
        await redis.aclose()
    assert worker.jobs_failed == 1
    assert await collections.runs.find_one({"run_id": "p1"}) is None
    about = [r for r in caplog.records if "p1" in r.getMessage()]
    assert len(about) == 1, [r.getMessage() for r in about]  # one line, no traceback
    assert about[0].exc_info is None
    assert about[0].getMessage().startswith("job p1 refused: the job is not JSON (arq's default")
    assert "job_serializer=orjson.dumps" in about[0].getMessage()


def test_docs_name_the_contract() -> None:
    text = Path(DOC).read_text()
    for name in (jobs.QUEUE_NAME, jobs.JOB_FUNCTION, "_job_id", "orjson"):
        assert name in text
