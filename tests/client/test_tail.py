"""`app tail` as a real process against a real API, with dropped connections in the middle."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from app import cli
from support.servers import RunningAPI
from support.tcpproxy import TCPProxy
from support.terminal import app_command

pytestmark = pytest.mark.timeout(120)


async def append(url: str, session: str, *events: dict[str, object]) -> list[str]:
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.post(f"/v1/sessions/{session}/events", json={"events": events})
    assert response.status_code == 201, response.text
    return [e["id"] for e in response.json()["events"]]


def numbered(start: int, count: int) -> list[dict[str, object]]:
    return [{"type": "n", "data": {"i": i}} for i in range(start, start + count)]


async def test_tail_json_prints_every_event_once_in_order_across_drops(
    api: RunningAPI, proxy: TCPProxy, proxy_url: str
) -> None:
    written = await append(api.url, "tailed", *numbered(0, 100))
    async with app_command("tail", "tailed", "--json", "--url", proxy_url) as tail:
        lines = await tail.lines(40)
        proxy.cut()
        lines += await tail.lines(60)
        written += await append(api.url, "tailed", *numbered(100, 20))
        lines += await tail.lines(5)
        proxy.cut()
        written += await append(api.url, "tailed", *numbered(120, 10))
        lines += await tail.lines(25)
        assert await tail.interrupt() == 0
        notes = await tail.stderr()
    events = [json.loads(line) for line in lines]
    assert [e["id"] for e in events] == written
    assert [e["data"]["i"] for e in events] == list(range(130))
    assert {e["session_id"] for e in events} == {"tailed"}
    assert "resuming after" in notes  # each drop is noted on stderr, not in the output


@pytest.mark.usefixtures("worker")
async def test_tail_shows_assembled_text_and_compact_events_without_colour_off_a_tty(
    api: RunningAPI,
) -> None:
    """A real echo run (run.* types are the service's own) and a tool call, as a person reads
    them: one line per event, the deltas assembled into one line per message."""
    async with httpx.AsyncClient(base_url=api.url) as client:
        body = {"agent": "echo", "input": {"text": "Hello, world!", "chunk": 7}}
        response = await client.post("/v1/sessions/readable/runs", json=body)
        assert response.status_code == 202, response.text
        run_id = response.json()["run_id"]
        async with app_command("tail", "readable", "--url", api.url) as tail:
            lines = await tail.lines(4)
            await append(api.url, "readable", {"type": "tool.call", "data": {"name": "search"}})
            lines += await tail.lines(1)
            assert await tail.interrupt() == 0
    assert f"run.queued run {run_id} agent=echo" in lines[0]
    assert f"run.started run {run_id} agent=echo attempt=1" in lines[1]
    assert lines[2].rstrip().endswith("▸ Hello, world! ✓")
    assert f"run.completed run {run_id}" in lines[3]
    assert 'tool.call {"name":"search"}' in lines[4]
    assert not any("\x1b[" in line for line in lines)


async def test_tail_since_a_token_or_a_time(api: RunningAPI) -> None:
    written = await append(api.url, "since", *numbered(0, 5))
    async with app_command("tail", "since", "--json", "--since", written[2], "--url", api.url) as t:
        assert [json.loads(line)["id"] for line in await t.lines(2)] == written[3:]
        assert await t.interrupt() == 0
    async with app_command("tail", "since", "--json", "--since", "0", "--url", api.url) as t:
        assert [json.loads(line)["id"] for line in await t.lines(5)] == written
        assert await t.interrupt() == 0


async def test_tail_reads_its_url_from_the_environment_and_reports_a_refusal(
    api: RunningAPI,
) -> None:
    async with app_command("tail", "x", "--since", "not-a-time", AGENTSTREAM_URL=api.url) as t:
        assert await t.wait() == 1
        assert "error: 400 bad_request" in await t.stderr()


async def test_app_tail_in_this_process_reports_a_refusal(
    api: RunningAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["tail", "x", "--since", "99.00000000", "--url", api.url]
    assert await asyncio.get_running_loop().run_in_executor(None, cli.main, argv) == 1
    assert "error: 400 bad_request" in capsys.readouterr().err
