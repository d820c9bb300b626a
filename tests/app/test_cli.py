"""The admin CLI: migrate and stats print what an operator needs."""

from __future__ import annotations

import asyncio
import datetime
import logging
import re
import socket
from collections.abc import Iterator

import orjson
import pytest

from app import cli
from app.mongo import Collections
from app.settings import Settings
from app.store.events import EventWriter, NewEvent, utc_now
from app.store.runs import RunStatus, RunStore


@pytest.fixture(autouse=True)
def keep_logging() -> Iterator[None]:
    """The CLI configures logging, as entry points do; give the test runner its own back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Settings:
    assert settings.mongo_url is not None
    monkeypatch.setenv("MONGO_URL", settings.mongo_url.get())
    monkeypatch.setenv("MONGO_DB", settings.mongo_db)
    return settings


def run_cli(*argv: str) -> int:
    # The CLI runs its own event loop, as it does from a shell.
    return asyncio.get_running_loop().run_in_executor(None, cli.main, list(argv))  # type: ignore[return-value]


async def test_migrate_says_what_it_did_then_that_nothing_changed(
    environment: Settings, collections: Collections, capsys: pytest.CaptureFixture[str]
) -> None:
    await collections.db.drop_collection("messages")
    assert await run_cli("migrate") == 0
    first = capsys.readouterr().out
    assert "created messages.message_id: (message_id asc), unique" in first
    assert await run_cli("migrate") == 0
    assert capsys.readouterr().out.strip() == "nothing to change: every index is up to date"


async def test_stats_reports_indexes_counts_and_recent_events(
    environment: Settings, collections: Collections, capsys: pytest.CaptureFixture[str]
) -> None:
    now = utc_now()
    times = iter(now + datetime.timedelta(seconds=i) for i in range(9))
    writer = EventWriter(collections, clock=lambda: next(times))
    await writer.append("s1", [NewEvent("hello", {})])
    await writer.append("s1", [NewEvent("bye", {})])
    runs = RunStore(collections)
    for run_id in ("r1", "r2", "r3"):
        await runs.ensure(run_id, "s1", "echo", None)
    await runs.start("r2", worker="w")
    await runs.finish("r3", RunStatus.TIMED_OUT)
    await writer.void("s1", [3])  # a position closed after a writer died
    assert await run_cli("stats", "--recent", "1") == 0
    captured = capsys.readouterr()
    assert "events.session_seq: (session_id 1, seq 1) unique" in captured.out
    assert "  events: documents=3  size=" in captured.out
    assert "Events: 2 (the events collection also holds 1 void document: positions" in captured.out
    assert re.search(r"avg_document=\d+(\.\d)? B", captured.out), captured.out
    assert not re.search(r"\d\.\d{2,}", captured.out.split("Events:")[0]), captured.out
    assert "s1  2." in captured.out  # the newest event's token
    assert "reading events: indexes, collStats" in captured.err  # progress on stderr
    runs_part = captured.out.split("Runs by status\n", 1)[1]
    assert runs_part.startswith(
        "  queued: 1\n  running: 1\n  succeeded: 0\n  failed: 0\n  cancelled: 0\n  timed_out: 1"
    )
    assert await run_cli("stats", "--json") == 0
    report = orjson.loads(capsys.readouterr().out)
    assert report["event_count"] == 2
    assert report["collections"]["events"]["count"] == 3
    assert [e["type"] for e in report["recent_events"]] == ["bye", "hello"]
    assert report["runs_by_status"] == {"queued": 1, "running": 1, "timed_out": 1}


def test_a_bad_setting_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SSE_POLL_INTERVAL", "-1")
    assert cli.main(["migrate"]) == 2
    assert capsys.readouterr().err == (
        "error: SSE_POLL_INTERVAL='-1' is invalid: SSE_POLL_INTERVAL accepts a number > 0.0"
        " and <= 60.0\n"
    )


def test_a_bad_workers_option_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--workers", "none"]) == 2
    assert capsys.readouterr().err == (
        "error: --workers='none' is invalid: --workers accepts `auto` or a whole number"
        " from 1 to 256\n"
    )


def test_workers_on_a_port_in_use_is_one_line_and_exit_1(
    environment: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        monkeypatch.setenv("PORT", str(port))
        monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1")  # never reached
        monkeypatch.setenv("AUTH_MODE", "off")
        assert cli.main(["serve", "--workers", "2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot listen on 127.0.0.1:{port}: ")
    assert err.count("\n") == 1
