"""The HTTP API's client: JSON calls and resuming streams over one `httpx.AsyncClient`."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from agentstream_client.errors import APIError, Unreachable, error_from_response
from agentstream_client.stream import SessionStream, Since

DEFAULT_URL = "http://127.0.0.1:8000"
URL_VARIABLE = "AGENTSTREAM_URL"
TOKEN_VARIABLE = "AGENTSTREAM_TOKEN"  # noqa: S105 (a variable name, not a secret)

Token = str | Callable[[], str | None] | None


class Client:
    """`async with Client(url, token=...) as client:`; every call raises `APIError` for an
    error answer and `Unreachable` when the API does not answer.

    `token` is a bearer token, or a function returning the current one (called for every
    request and every reconnect, so a stream can go on with a refreshed token).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        token: Token = None,
        timeout: float = 30.0,
        read_timeout: float = 60.0,
        max_backoff: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = (url or os.environ.get(URL_VARIABLE) or DEFAULT_URL).rstrip("/")
        self._token = token
        self._read_timeout = read_timeout
        self._max_backoff = max_backoff
        self._http = httpx.AsyncClient(
            base_url=self.url,
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": "agentstream-client"},
        )

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def headers(self) -> dict[str, str]:
        token = self._token() if callable(self._token) else self._token
        return {"Authorization": f"Bearer {token}"} if token else {}

    def stream(
        self, session_id: str, last_event_id: str | None = None, since: Since | None = None
    ) -> SessionStream:
        """The session's events from after `last_event_id`, or from `since` (a datetime, ISO
        8601 or epoch milliseconds), else from the start of its retained history; then live,
        resuming by itself after every drop. Control events: `stream.history_lost` is yielded
        (its data says what was lost); `stream.reconnect` is handled here."""
        return SessionStream(
            self._http,
            session_id,
            headers=self.headers,
            last_event_id=last_event_id,
            since=since,
            read_timeout=self._read_timeout,
            max_backoff=self._max_backoff,
        )

    async def append(
        self,
        session_id: str,
        type: str,
        data: Mapping[str, Any] | None = None,
        *,
        trace_id: str | None = None,
        event_id: str | None = None,
    ) -> dict[str, Any]:
        """Append one event; returns `{"event_id", "id", "timestamp"}`. With an `event_id`,
        appending again is harmless (the API is idempotent on it)."""
        event: dict[str, Any] = {"type": type, "data": dict(data or {})}
        if trace_id is not None:
            event["trace_id"] = trace_id
        if event_id is not None:
            event["event_id"] = event_id
        return (await self.append_batch(session_id, [event]))[0]

    async def append_batch(
        self, session_id: str, events: list[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """Append up to 1000 events in one request, in order."""
        found = await self._call("POST", f"{_session(session_id)}/events", {"events": events})
        stored: list[dict[str, Any]] = found["events"]
        return stored

    async def start_run(
        self,
        session_id: str,
        agent: str,
        input: Mapping[str, Any],
        *,
        trace_id: str | None = None,
        run_id: str | None = None,
    ) -> dict[str, Any]:
        """Enqueue a run; returns `{"run_id", "trace_id"}`."""
        body: dict[str, Any] = {"agent": agent, "input": dict(input)}
        if trace_id is not None:
            body["trace_id"] = trace_id
        if run_id is not None:
            body["run_id"] = run_id
        found: dict[str, Any] = await self._call("POST", f"{_session(session_id)}/runs", body)
        return found

    async def get_run(self, run_id: str) -> dict[str, Any]:
        found: dict[str, Any] = await self._call("GET", f"/v1/runs/{quote(run_id, safe='')}")
        return found

    async def cancel_run(self, run_id: str) -> dict[str, Any]:
        """Cancel a queued or running run; returns the run (APIError 409 once it has ended)."""
        path = f"/v1/runs/{quote(run_id, safe='')}/cancel"
        found: dict[str, Any] = await self._call("POST", path)
        return found

    async def get_event(self, event_id: str) -> dict[str, Any]:
        found: dict[str, Any] = await self._call("GET", f"/v1/events/{quote(event_id, safe='')}")
        return found

    async def agents(self) -> list[dict[str, str]]:
        """The agents the API can start: `[{"name", "description"}]`."""
        found: list[dict[str, str]] = (await self._call("GET", "/v1/agents"))["agents"]
        return found

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            response = await self._http.request(method, path, json=body, headers=self.headers())
        except httpx.TransportError as exc:
            raise Unreachable(f"{self.url} did not answer: {type(exc).__name__} {exc}") from exc
        if response.status_code >= 400:
            raise error_from_response(response)
        return response.json()


def _session(session_id: str) -> str:
    return f"/v1/sessions/{quote(session_id, safe='')}"


__all__ = ["APIError", "Client"]
