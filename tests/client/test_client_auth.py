"""`app tail` and `app run` against the API with access control on (AUTH_MODE=jwt): the token
from `--token` or AGENTSTREAM_TOKEN, and a refusal (401, 403) as a clear error and a non-zero
exit status."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from app import cli
from support.servers import RunningAPI
from support.terminal import app_command
from support.tokens import bearer, token

pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("worker")]


# Tokens are minted when each test starts: a module-level one could expire during a long run.
def admin() -> str:
    return token(sub="admin", scope="admin")


def team() -> str:
    return token(sub="alice", sessions=["team-*"])


def reader() -> str:
    return token(sub="reader", scope="events:read", sessions=["team-*"])


def badly_signed() -> str:
    return token(sub="mallory", key="not-the-server-secret-but-32-bytes-long")


async def append(url: str, session: str, count: int, start: int = 0) -> list[str]:
    events = [{"type": "n", "data": {"i": i}} for i in range(start, start + count)]
    async with httpx.AsyncClient(base_url=url, headers=bearer(admin())) as client:
        response = await client.post(f"/v1/sessions/{session}/events", json={"events": events})
    assert response.status_code == 201, response.text
    return [e["id"] for e in response.json()["events"]]


async def test_tail_follows_a_covered_session_with_the_token_from_the_flag_or_environment(
    jwt_api: RunningAPI,
) -> None:
    team_token = team()
    written = await append(jwt_api.url, "team-1", 3)
    async with app_command(
        "tail", "team-1", "--json", "--url", jwt_api.url, "--token", team_token
    ) as tail:
        lines = await tail.lines(3)
        written += await append(jwt_api.url, "team-1", 2, start=3)
        lines += await tail.lines(2)
        assert await tail.interrupt() == 0
    assert [json.loads(line)["id"] for line in lines] == written
    async with app_command(
        "tail", "team-1", "--json", AGENTSTREAM_URL=jwt_api.url, AGENTSTREAM_TOKEN=team_token
    ) as tail:
        assert [json.loads(line)["id"] for line in await tail.lines(5)] == written
        assert await tail.interrupt() == 0


async def test_tail_refused_says_why_and_exits_1(jwt_api: RunningAPI) -> None:
    team_token, bad_token = team(), badly_signed()
    await append(jwt_api.url, "private", 1)
    async with app_command("tail", "private", "--url", jwt_api.url) as tail:
        assert await tail.wait() == 1
        err = await tail.stderr()
    assert "error: 401 unauthorized" in err
    assert "pass --token or set AGENTSTREAM_TOKEN" in err
    async with app_command(
        "tail", "private", "--url", jwt_api.url, AGENTSTREAM_TOKEN=bad_token
    ) as tail:
        assert await tail.wait() == 1
        assert "401 unauthorized: the token's signature is invalid" in await tail.stderr()
    async with app_command("tail", "private", "--url", jwt_api.url, "--token", team_token) as tail:
        assert await tail.wait() == 1
        err = await tail.stderr()
    assert "error: 403 forbidden: the token does not cover session private" in err
    assert "does not grant this" in err
    assert team_token not in err  # the token itself is never printed


async def test_run_with_a_token_succeeds_and_a_refused_one_exits_2(jwt_api: RunningAPI) -> None:
    team_token, reader_token = team(), reader()
    payload = json.dumps({"text": "Hello with a token", "chunk": 4})
    async with app_command(
        "run",
        "echo",
        "--session",
        "team-run",
        "--input",
        payload,
        "--url",
        jwt_api.url,
        "--token",
        team_token,
    ) as run:
        assert await run.wait() == 0
        out, err = await run.stdout(), await run.stderr()
    assert out == "Hello with a token\n"
    assert "succeeded" in err
    async with app_command(
        "run",
        "echo",
        "--session",
        "team-run",
        "--input",
        payload,
        AGENTSTREAM_URL=jwt_api.url,
        AGENTSTREAM_TOKEN=team_token,
    ) as run:
        assert await run.wait() == 0
        assert await run.stdout() == "Hello with a token\n"
    async with app_command(
        "run", "echo", "--session", "team-run", "--url", jwt_api.url, "--token", reader_token
    ) as run:
        assert await run.wait() == 2
        err = await run.stderr()
    assert "error: 403 forbidden: the token does not grant the scope runs:write" in err
    async with app_command("run", "echo", "--session", "elsewhere", "--url", jwt_api.url) as run:
        assert await run.wait() == 2
        assert "error: 401 unauthorized" in await run.stderr()


async def test_refusals_in_this_process_too(
    jwt_api: RunningAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same commands through `app.cli.main`, as the console script calls them."""
    team_token, bad_token = team(), badly_signed()
    loop = asyncio.get_running_loop()
    argv = ["tail", "private", "--url", jwt_api.url, "--token", team_token]
    assert await loop.run_in_executor(None, cli.main, argv) == 1
    assert "403 forbidden" in capsys.readouterr().err
    argv = ["run", "echo", "--session", "team-x", "--url", jwt_api.url, "--token", bad_token]
    assert await loop.run_in_executor(None, cli.main, argv) == 2
    err = capsys.readouterr().err
    assert "401 unauthorized: the token's signature is invalid" in err
    assert "`app token` mints one" in err
