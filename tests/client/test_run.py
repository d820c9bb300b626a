"""`app run` as a real process: its text on stdout and an exit status from the run's end."""

from __future__ import annotations

import ast
import asyncio
import json
import re

import httpx
import pytest

from app import cli
from support.servers import RunningAPI
from support.terminal import app_command
from support.worker import ROOT, snippet

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("worker")]


async def test_a_run_that_succeeds_prints_its_text_and_exits_0(api: RunningAPI) -> None:
    text = "Streaming to a terminal, three characters at a time."
    payload = json.dumps({"text": text, "chunk": 3, "delay": 0.01})
    async with app_command(
        "run", "echo", "--session", "cli-ok", "--input", payload, "--url", api.url
    ) as run:
        assert await run.wait() == 0
        out, err = await run.stdout(), await run.stderr()
    assert out == text + "\n"
    assert re.search(r"run \w+ queued: agent echo, session cli-ok", err)
    assert "succeeded" in err


async def test_a_run_that_fails_exits_1_with_its_error(api: RunningAPI) -> None:
    async with app_command(
        "run", "boom", "--session", "cli-fail", "--input", '{"why": "testing"}', "--url", api.url
    ) as run:
        assert await run.wait() == 1
        out, err = await run.stdout(), await run.stderr()
    assert out == "about to fail\n"
    assert re.search(r"error: run \w+ failed: RuntimeError: boom: testing", err)


async def test_a_run_cancelled_meanwhile_exits_1(api: RunningAPI) -> None:
    payload = json.dumps({"text": "slow text", "delay": 1})
    async with app_command(
        "run", "echo", "--session", "cli-cancel", "--input", payload, "--url", api.url
    ) as run:
        queued = await run.stderr_line()
        match = re.search(r"run (\w+) queued", queued)
        assert match, queued
        assert "started" in await run.stderr_line()
        async with httpx.AsyncClient(base_url=api.url) as client:
            response = await client.post(f"/v1/runs/{match.group(1)}/cancel")
        assert response.status_code in (200, 202), response.text
        assert await run.wait() == 1
        assert f"error: run {match.group(1)} cancelled" in await run.stderr()


async def test_refused_and_unreachable_runs_exit_2_and_3(api: RunningAPI) -> None:
    async with app_command("run", "nope", "--session", "s", "--url", api.url) as run:
        assert await run.wait() == 2
        assert "400 unknown_agent" in await run.stderr()
    async with app_command("run", "echo", "--session", "s", "--input", "[1]") as run:
        assert await run.wait() == 2
        assert "--input must be a JSON object" in await run.stderr()
    async with app_command("run", "echo", "--session", "s", "--url", "http://127.0.0.1:9") as run:
        assert await run.wait() == 3
        assert "did not answer" in await run.stderr()


async def test_the_readme_client_example_runs(
    api: RunningAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    source = snippet("client").replace("http://127.0.0.1:8000", api.url)
    code = compile(source, str(ROOT / "README.md"), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, {})
    if asyncio.iscoroutine(result):
        await result
    assert capsys.readouterr().out == "Hello\nsucceeded\n"


async def test_app_run_in_this_process_too(
    api: RunningAPI, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same command through `app.cli.main`, as the console script calls it."""
    monkeypatch.setenv("AGENTSTREAM_URL", api.url)
    monkeypatch.setenv("NO_COLOR", "1")
    argv = ["run", "echo", "--session", "in-process", "--input", '{"text": "hi", "chunk": 1}']
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, cli.main, argv) == 0
    captured = capsys.readouterr()
    assert captured.out == "hi\n"
    assert "succeeded" in captured.err
    argv = ["run", "boom", "--session", "in-process", "--input", "{}"]
    assert await loop.run_in_executor(None, cli.main, argv) == 1
    assert "failed: RuntimeError: boom: no reason" in capsys.readouterr().err
