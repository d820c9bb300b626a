"""The `openai` agent against a local server speaking the real chat.completions stream."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import Any

import pytest

from app.jobs import arq_pool, enqueue, run_args
from app.mongo import Collections
from app.settings import Secret, Settings
from support.worker import (
    FakeOpenAI,
    Reply,
    burst,
    deltas_text,
    session_events,
    text_chunks,
    types,
    wait_status,
    worker_env,
)
from worker.agents import openai
from worker.runtime import InputError


@pytest.fixture
def openai_settings(settings: Settings, fake_openai: FakeOpenAI) -> Settings:
    return dataclasses.replace(
        settings,
        openai_base_url=fake_openai.url,
        openai_api_key=Secret("sk-test"),
        openai_model="gpt-test",
    )


async def run(settings: Settings, input: dict[str, Any], run_id: str = "ai") -> None:
    assert settings.redis_url is not None
    redis = await arq_pool(settings.redis_url.get())
    try:
        await enqueue(redis, run_args(run_id, run_id, "openai", input))
    finally:
        await redis.aclose()
    await burst(settings)


async def test_a_completion_streams_as_deltas(
    openai_settings: Settings, collections: Collections, fake_openai: FakeOpenAI
) -> None:
    fake_openai.replies.append(Reply(chunks=text_chunks("Hel", "lo, ", "world", "!"), delay=0.01))
    await run(openai_settings, {"prompt": "Say hello", "temperature": 0.5, "max_tokens": 20})
    record = await wait_status(collections, "ai", "succeeded", timeout=10)
    events = await session_events(collections, "ai")
    assert types(events) == [
        "run.queued",
        "run.started",
        *["message.delta"] * 4,
        "message.completed",
        "run.completed",
    ]
    assert deltas_text(events) == "Hello, world!"
    assert events[-2]["data"]["content"] == "Hello, world!"
    assert {e["trace_id"] for e in events} == {record["trace_id"]}
    (request,) = fake_openai.requests
    assert (request["method"], request["path"]) == ("POST", "/v1/chat/completions")
    assert request["headers"]["authorization"] == "Bearer sk-test"
    assert request["json"] == {
        "model": "gpt-test",
        "messages": [{"role": "user", "content": "Say hello"}],
        "stream": True,
        "temperature": 0.5,
        "max_tokens": 20,
    }


async def test_messages_and_model_pass_through(
    openai_settings: Settings, collections: Collections, fake_openai: FakeOpenAI
) -> None:
    conversation = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    await run(openai_settings, {"messages": conversation, "model": "other", "parent_id": "m0"})
    await wait_status(collections, "ai", "succeeded", timeout=10)
    assert fake_openai.requests[0]["json"]["messages"] == conversation
    assert fake_openai.requests[0]["json"]["model"] == "other"
    message = await collections.messages.find_one({"message_id": "ai.m1"})
    assert message is not None
    assert message["parent_id"] == "m0"
    assert message["content"] == "ok"


async def test_a_provider_error_fails_the_run_with_a_clear_message(
    openai_settings: Settings, collections: Collections, fake_openai: FakeOpenAI
) -> None:
    fake_openai.replies.append(
        Reply(
            status=429,
            body={
                "error": {
                    "message": "Rate limit reached for gpt-test.",
                    "type": "requests",
                    "param": None,
                    "code": "rate_limit_exceeded",
                }
            },
        )
    )
    await run(openai_settings, {"prompt": "hi"})
    record = await wait_status(collections, "ai", "failed", timeout=10)
    assert record["error"] == {
        "type": "ProviderError",
        "message": "openai: 429 rate_limit_exceeded: Rate limit reached for gpt-test.",
    }
    events = await session_events(collections, "ai")
    assert types(events) == ["run.queued", "run.started", "run.failed"]
    assert events[-1]["data"]["error"] == record["error"]


async def test_an_error_inside_the_stream_fails_the_run(
    openai_settings: Settings, collections: Collections, fake_openai: FakeOpenAI
) -> None:
    chunks = text_chunks("partial ")[:2]
    chunks.append({"error": {"message": "The server had an error.", "type": "server_error"}})
    fake_openai.replies.append(Reply(chunks=chunks, done=False))
    await run(openai_settings, {"prompt": "hi"})
    record = await wait_status(collections, "ai", "failed", timeout=10)
    assert (
        record["error"]["message"] == "openai: stream error server_error: The server had an error."
    )
    events = await session_events(collections, "ai")
    assert types(events) == [
        "run.queued",
        "run.started",
        "message.delta",
        "message.completed",
        "run.failed",
    ]
    assert events[-2]["data"]["incomplete"] is True
    assert events[-2]["data"]["content"] == deltas_text(events)


async def test_an_unreachable_provider_fails_the_run(
    openai_settings: Settings, collections: Collections
) -> None:
    unreachable = dataclasses.replace(openai_settings, openai_base_url="http://127.0.0.1:9/v1")
    await run(unreachable, {"prompt": "hi"})
    record = await wait_status(collections, "ai", "failed", timeout=10)
    assert record["error"]["type"] == "ProviderError"
    assert record["error"]["message"].startswith(
        "openai: ConnectError at http://127.0.0.1:9/v1/chat/completions: "
    )


def test_the_worker_warns_at_start_up_when_openai_has_no_key(
    settings: Settings, collections: Collections
) -> None:
    env = {k: v for k, v in worker_env(settings).items() if k != "OPENAI_API_KEY"}
    env["OPENAI_BASE_URL"] = "http://127.0.0.1:9/v1"

    def start(environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
        # --burst with an empty queue: the worker starts, finds nothing to do and exits.
        return subprocess.run(
            [sys.executable, "-m", "worker", "--burst"],
            env=environ,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    without = start(env)
    assert without.returncode == 0, without.stderr
    warnings = [line for line in without.stderr.splitlines() if "OPENAI_API_KEY" in line]
    assert len(warnings) == 1, without.stderr
    assert "WARNING" in warnings[0]
    assert "http://127.0.0.1:9/v1" in warnings[0]
    with_key = start(env | {"OPENAI_API_KEY": "sk-test"})
    assert with_key.returncode == 0, with_key.stderr
    assert "OPENAI_API_KEY" not in with_key.stderr


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({}, "either prompt or messages"),
        ({"prompt": "a", "messages": []}, "either prompt or messages"),
        ({"prompt": {"text": "a"}}, "input.prompt must be a string, got an object"),
        ({"messages": [{"role": "user"}]}, r"input.messages\[0\].content is required"),
        ({"messages": [{"role": "user", "content": ["a"]}]}, "must be a string, got an array"),
        ({"prompt": "a", "temperature": 3}, "temperature"),
        ({"prompt": "a", "parent_id": "a b"}, "parent_id"),
    ],
)
def test_openai_checks_its_input(value: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        openai.parse(value)
