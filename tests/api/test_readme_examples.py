"""The README's streaming examples, run as written against a real API."""

from __future__ import annotations

import re

import httpx
import pytest

from app.store import tokens
from support.servers import RunningAPI
from support.sse import open_stream
from support.worker import DOC

pytestmark = pytest.mark.timeout(60)


def readme() -> str:
    return DOC.read_text()


def test_every_token_shown_for_demo_belongs_to_demo() -> None:
    shown = re.findall(r"\b(\d+)\.([0-9a-f]{8})\b", readme())
    assert shown
    assert {tag for _, tag in shown} == {tokens.session_tag("demo")}


async def test_the_documented_append_then_resume_works(api: RunningAPI) -> None:
    text = readme()
    append = re.search(
        r"curl -s localhost:8000(/v1/sessions/demo/events) \\\n.*?-d '(.*?)'", text, re.S
    )
    resume = re.search(r"curl -N localhost:8000(/v1/sessions/demo/stream) -H '(.*?)'", text)
    assert append is not None
    assert resume is not None
    name, _, value = resume.group(2).partition(": ")
    async with httpx.AsyncClient(base_url=api.url) as client:
        for _ in range(2):
            written = await client.post(
                append.group(1),
                content=append.group(2),
                headers={"content-type": "application/json"},
            )
            assert written.status_code == 201, written.text
        assert name == "Last-Event-ID"
        assert value == tokens.encode("demo", 1)  # the first event the example appended
        async with open_stream(client, "demo", last_event_id_header=value) as stream:
            assert stream.response.status_code == 200, value
            (event,) = await stream.take(1)
    assert event.id == tokens.encode("demo", 2)
