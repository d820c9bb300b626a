"""The README's custom agent, loaded from the directory `./dev` is called from."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from app.jobs import arq_pool, enqueue, run_args
from app.mongo import Collections
from app.settings import Settings
from support.worker import ROOT, session_events, types, wait_status, worker_env

pytestmark = pytest.mark.timeout(120)

SHOUT = '''\
from worker.runtime import AgentContext


async def shout(ctx: AgentContext) -> None:
    """Streams the input text back in capitals, one word per delta."""
    words = str(ctx.input.get("text", "")).split()
    async with ctx.stream_message(role="assistant") as message:
        for word in words:
            await message.delta(word.upper() + " ")
    await ctx.emit("shout.stats", {"words": len(words)})
'''


def dev(directory: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`./dev ARGS` typed in `directory` (./dev itself moves to the project)."""
    env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [str(ROOT / "dev"), *args],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


async def test_an_agent_next_to_the_caller_runs(
    settings: Settings, collections: Collections, tmp_path: Path
) -> None:
    (tmp_path / "myagents.py").write_text(SHOUT)
    assert settings.redis_url is not None
    redis = await arq_pool(settings.redis_url.get())
    try:
        await enqueue(redis, run_args("loud", "loud", "shout", {"text": "hello there"}))
    finally:
        await redis.aclose()
    env = worker_env(settings, AGENTS="shout=myagents:shout")
    done = dev(tmp_path, env, "worker", "--burst")
    assert done.returncode == 0, done.stderr
    await wait_status(collections, "loud", "succeeded")
    events = await session_events(collections, "loud")
    assert types(events)[-2:] == ["shout.stats", "run.completed"]
    completed = next(e for e in events if e["type"] == "message.completed")
    assert completed["data"]["content"] == "HELLO THERE "


def test_an_agent_that_cannot_load_stops_the_worker_with_one_line(
    settings: Settings, tmp_path: Path
) -> None:
    env = worker_env(settings, AGENTS="shout=myagents:shout,echo2=worker.agents.echo:nothing")
    refused = dev(tmp_path, env, "worker")
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        "error: agent 'echo2' (AGENTS) cannot be loaded from worker.agents.echo:nothing:"
        " module 'worker.agents.echo' has no attribute 'nothing'",
        "error: agent 'shout' (AGENTS) cannot be loaded from myagents:shout:"
        " No module named 'myagents'",
    ]


def test_dev_serve_with_an_agent_that_cannot_load_stops_before_starting_anything(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGO", "REDIS"))}
    env["AGENTS"] = "shout=myagents:shout"
    refused = dev(tmp_path, env, "serve")
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        "error: agent 'shout' (AGENTS) cannot be loaded from myagents:shout:"
        " No module named 'myagents'",
    ]
