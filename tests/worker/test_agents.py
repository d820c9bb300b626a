"""The agent registry and the built-in agents, run by a real worker (in process, burst mode)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from app.jobs import QUEUE_NAME, arq_pool, enqueue, run_args
from app.mongo import Collections
from app.settings import Settings
from support.worker import (
    burst,
    deltas_text,
    running_worker,
    session_events,
    snippet,
    types,
    wait_status,
)
from worker.agents import AgentLoadError, Registry, UnknownAgent, echo, script
from worker.runtime import Agent, InputError


async def run(settings: Settings, agent: str, input: dict[str, Any], run_id: str = "r1") -> None:
    """Enqueue one run (session = run id) and let a burst worker run it."""
    assert settings.redis_url is not None
    redis = await arq_pool(settings.redis_url.get())
    try:
        await enqueue(redis, run_args(run_id, run_id, agent, input, f"trace-{run_id}"))
    finally:
        await redis.aclose()
    await burst(settings)


def test_the_registry_knows_builtins_settings_and_entry_points(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = tmp_path / "third_party_agents-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: third-party-agents\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[agentstream.agents]\nplugged = third_party_agents:agent\nBad Name = x:y\n"
    )
    (tmp_path / "third_party_agents.py").write_text(
        "async def agent(ctx):\n    await ctx.emit('plugged.hello', {})\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    configured = dataclasses.replace(
        settings, agents=("mine=tests_agents_missing:run", "echo=worker.agents.script:agent")
    )
    registry = Registry.from_settings(configured)
    assert registry.names() == ["echo", "mine", "openai", "plugged", "script"]
    assert registry.spec("plugged").source == "entry point"
    assert registry.load("echo") is script.agent  # AGENTS overrides a built-in
    plugged = registry.load("plugged")
    assert isinstance(plugged, Agent)
    assert plugged.validate is None
    with pytest.raises(AgentLoadError, match="tests_agents_missing"):
        registry.load("mine")
    with pytest.raises(UnknownAgent, match="known agents: echo, mine"):
        registry.load("nope")
    assert "nope" not in registry


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({}, "input.text is required"),
        ({"text": {"a": 1}}, "input.text must be a string, got an object"),
        ({"text": "x" * 100_001}, "longer than 100000"),
        ({"text": "x", "chunk": 0}, "input.chunk must be a whole number from 1 to 10000"),
        ({"text": "x", "chunk": True}, "input.chunk"),
        ({"text": "x", "chunk": 1.5}, "input.chunk"),
        ({"text": "x", "delay": -1}, "input.delay must be a number from 0 to 60"),
        ({"text": "x", "delay": float("nan")}, "input.delay"),
        ({"text": "x", "speed": 2}, "unknown fields: speed"),
    ],
)
def test_echo_checks_its_input(value: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        echo.parse(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"events": []}, "1 to 10000 events"),
        ({"events": [{"type": "run.completed"}]}, "lifecycle"),
        ({"events": [{"type": "a", "data": []}]}, "data must be a JSON object"),
        ({"events": [{"type": "a", "delay": 61}]}, r"input.events\[0\].delay"),
        ({"events": [{"type": "a", "when": 1}]}, "unknown fields: when"),
        ({"events": [{"type": "a"}] * 200, "repeat": 1000}, "at most 100000"),
    ],
)
def test_script_checks_its_input(value: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        script.parse(value)


async def test_echo_streams_text_in_chunks(settings: Settings, collections: Collections) -> None:
    text = "The quick brown fox."
    await run(settings, "echo", {"text": text, "chunk": 3, "delay": 0.01})
    record = await wait_status(collections, "r1", "succeeded", timeout=5)
    assert record["started_at"] <= record["ended_at"]
    assert record["error"] is None
    assert record["attempts"] == 1
    events = await session_events(collections, "r1")
    deltas = [e["data"]["delta"] for e in events if e["type"] == "message.delta"]
    assert deltas == [text[i : i + 3] for i in range(0, len(text), 3)]
    # The deltas were 10 ms apart, so the 5 ms emitter wrote them in separate inserts.
    stamps = [e["timestamp"] for e in events if e["type"] == "message.delta"]
    assert (stamps[-1] - stamps[0]).total_seconds() >= 0.05
    completed = events[-2]
    assert completed["type"] == "message.completed"
    assert completed["data"] == {"message_id": "r1.m1", "role": "assistant", "content": text}
    assert events[-1]["data"] == {"run_id": "r1", "status": "succeeded"}
    message = await collections.messages.find_one({"message_id": "r1.m1"}, {"_id": 0})
    assert message is not None
    assert message["content"] == text
    assert message["trace_id"] == "trace-r1"
    assert message["session_id"] == "r1"
    assert message["parent_id"] is None


async def test_script_replays_events(settings: Settings, collections: Collections) -> None:
    steps = [
        {"type": "tool.call", "data": {"name": "search"}},
        {"type": "tool.result", "data": {"hits": 3}, "delay": 0.01},
    ]
    await run(settings, "script", {"events": steps, "repeat": 2})
    await wait_status(collections, "r1", "succeeded", timeout=5)
    events = await session_events(collections, "r1")
    assert types(events)[2:-1] == ["tool.call", "tool.result"] * 2
    assert events[3]["data"] == {"hits": 3}


async def test_an_agent_error_fails_the_run_without_a_traceback(
    settings: Settings, collections: Collections, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "failing_agents.py").write_text(
        "async def boom(ctx):\n"
        "    async with ctx.stream_message() as m:\n"
        "        await m.delta('partial')\n"
        "        raise LookupError('the index is gone')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    configured = dataclasses.replace(settings, agents=("boom=failing_agents:boom",))
    await run(configured, "boom", {})
    record = await wait_status(collections, "r1", "failed", timeout=5)
    error = {"type": "LookupError", "message": "the index is gone"}
    assert record["error"] == error
    events = await session_events(collections, "r1")
    assert types(events) == [
        "run.queued",
        "run.started",
        "message.delta",
        "message.completed",  # what it said before failing, marked incomplete
        "run.failed",
    ]
    assert events[-2]["data"] == {
        "message_id": "r1.m1",
        "role": "assistant",
        "content": "partial",
        "incomplete": True,
        "reason": "failed",
    }
    assert events[-1]["data"] == {"run_id": "r1", "status": "failed", "error": error}
    assert "Traceback" not in str(events)


async def test_bad_input_or_an_unknown_agent_fails_a_plain_arq_run(
    settings: Settings, collections: Collections
) -> None:
    await run(settings, "echo", {"text": 5}, run_id="bad-input")
    await run(settings, "nobody", {}, run_id="no-agent")
    record = await wait_status(collections, "bad-input", "failed", timeout=5)
    assert record["error"] == {
        "type": "InputError",
        "message": "input.text must be a string, got int",
    }
    record = await wait_status(collections, "no-agent", "failed", timeout=5)
    assert record["error"]["type"] == "UnknownAgent"
    assert types(await session_events(collections, "no-agent"))[-1] == "run.failed"


async def test_the_documented_custom_agent_runs(
    settings: Settings, collections: Collections, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = snippet("agent")
    assert source.startswith("# myagents.py\n")
    (tmp_path / "myagents.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    configured = dataclasses.replace(settings, agents=("shout=myagents:shout",))
    await run(configured, "shout", {"text": "hello agent world"})
    await wait_status(collections, "r1", "succeeded", timeout=5)
    events = await session_events(collections, "r1")
    assert deltas_text(events) == "HELLO AGENT WORLD "
    assert events[-2]["type"] == "shout.stats"
    assert events[-2]["data"] == {"words": 3}


FLAKY = """
from pymongo.errors import AutoReconnect


async def flaky(ctx):
    await ctx.emit("attempt", {"attempt": ctx.attempt})
    if ctx.attempt == 1:
        raise AutoReconnect("connection to MongoDB lost")
    await ctx.message("assistant", "done")
"""


@pytest.mark.parametrize(("tries", "status"), [(3, "succeeded"), (1, "failed")])
async def test_a_backend_error_is_retried_with_backoff(
    settings: Settings,
    collections: Collections,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tries: int,
    status: str,
) -> None:
    (tmp_path / "flaky_agents.py").write_text(FLAKY)
    monkeypatch.syspath_prepend(str(tmp_path))
    configured = dataclasses.replace(
        settings, agents=("flaky=flaky_agents:flaky",), job_max_tries=tries
    )
    assert configured.redis_url is not None
    redis = await arq_pool(configured.redis_url.get())
    try:
        await enqueue(redis, run_args("r1", "r1", "flaky", {}))
    finally:
        await redis.aclose()
    async with running_worker(configured):
        record = await wait_status(collections, "r1", status, timeout=15)
    events = await session_events(collections, "r1")
    if status == "succeeded":
        assert record["attempts"] == 2
        assert (record["ended_at"] - record["started_at"]).total_seconds() >= 2  # the backoff
        # Each try says it started, with its number; the second try's "attempt" event has the
        # first one's id: written once.
        assert types(events) == [
            "run.queued",
            "run.started",
            "attempt",
            "run.started",
            "message.completed",
            "run.completed",
        ]
        started = [e for e in events if e["type"] == "run.started"]
        assert [e["data"]["attempt"] for e in started] == [1, 2]
        assert [e["event_id"] for e in started] == ["r1~started", "r1~started.2"]
    else:
        assert record["error"] == {"type": "AutoReconnect", "message": "connection to MongoDB lost"}
        assert types(events) == ["run.queued", "run.started", "attempt", "run.failed"]


async def test_a_run_redelivered_too_often_ends_failed(
    settings: Settings, collections: Collections
) -> None:
    """A run whose workers died JOB_MAX_TRIES times is ended by the next try, not dropped."""
    assert settings.redis_url is not None
    redis = await arq_pool(settings.redis_url.get())
    try:
        args = run_args("r1", "r1", "echo", {"text": "x"})
        await redis.enqueue_job(
            "run_agent",
            dict(args),
            _job_id="r1",
            _queue_name=QUEUE_NAME,
            _job_try=settings.job_max_tries + 1,  # as if the earlier tries had died
        )
    finally:
        await redis.aclose()
    await burst(settings)
    record = await wait_status(collections, "r1", "failed", timeout=5)
    assert record["error"] == {"type": "RetriesExhausted", "message": "gave up after 3 tries"}
    assert types(await session_events(collections, "r1")) == ["run.queued", "run.failed"]
