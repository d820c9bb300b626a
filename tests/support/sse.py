"""A small SSE client for tests: reads a real stream over HTTP and parses its events."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson


@dataclasses.dataclass
class Event:
    id: str | None
    event: str
    data: Any


@dataclasses.dataclass
class Stream:
    response: httpx.Response
    comments: list[str] = dataclasses.field(default_factory=list)
    retry: int | None = None
    _events: AsyncIterator[Event] | None = None

    async def events(self) -> AsyncIterator[Event]:
        fields: dict[str, str] = {}
        async for line in self.response.aiter_lines():
            if line == "":
                if "data" in fields or "event" in fields:
                    yield Event(
                        fields.get("id"),
                        fields.get("event", "message"),
                        orjson.loads(fields.get("data", "null")),
                    )
                fields = {}
            elif line.startswith(":"):
                self.comments.append(line[1:].strip())
            else:
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "retry":
                    self.retry = int(value)
                else:
                    fields[name] = value

    async def take(self, count: int, timeout: float = 15.0) -> list[Event]:
        taken: list[Event] = []
        if count == 0:
            return taken
        if self._events is None:
            self._events = self.events()
        async with asyncio.timeout(timeout):
            while len(taken) < count:
                taken.append(await anext(self._events))
        return taken

    async def rest(self, timeout: float = 30.0) -> list[Event]:
        """Every event until the server ends the stream (after any `take`)."""
        if self._events is None:
            self._events = self.events()
        async with asyncio.timeout(timeout):
            return [event async for event in self._events]


def open_stream(
    client: httpx.AsyncClient, session_id: str, **params: str
) -> Any:  # an async context manager yielding Stream
    headers = {}
    if "last_event_id_header" in params:
        headers["Last-Event-ID"] = params.pop("last_event_id_header")
    return _opened(client, f"/v1/sessions/{session_id}/stream", params, headers)


@dataclasses.dataclass
class _opened:
    client: httpx.AsyncClient
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    _context: Any = None

    async def __aenter__(self) -> Stream:
        self._context = self.client.stream(
            "GET", self.path, params=self.params, headers=self.headers, timeout=30
        )
        response = await self._context.__aenter__()
        if response.status_code != 200:
            await response.aread()
        return Stream(response)

    async def __aexit__(self, *exc: object) -> None:
        await self._context.__aexit__(*exc)
