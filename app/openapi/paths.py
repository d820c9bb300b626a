"""Every operation of the HTTP API: parameters, bodies, answers, security and links.

`paths(auth_required=..., agents=...)` is the `paths` object. Limits come from the handlers'
and validators' own constants; the error codes of each operation are listed next to it.
"""

from __future__ import annotations

from typing import Any

from app.api.events import PAGE_DEFAULT, PAGE_MAX, TRACE_PAGE_DEFAULT
from app.openapi.responses import AUTH_CODES, errors, json_response
from app.openapi.schemas import Schema, identifier, ref, token
from app.openapi.service import service_paths
from app.store.messages import MAX_LIST
from app.validation import LOOKUP_ID_PATTERN

type Operation = dict[str, Any]

SESSIONS_PAGE_DEFAULT = 50  # GET /v1/sessions (DESIGN.md "More endpoints")


def _path(name: str, what: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": identifier(what)}


def _limit(default: int, high: int = PAGE_MAX) -> dict[str, Any]:
    return {
        "name": "limit",
        "in": "query",
        "description": f"How many to return, 1-{high} ({default} when absent).",
        "schema": {"type": "integer", "minimum": 1, "maximum": high, "default": default},
    }


_SINCE = {
    "name": "since_timestamp",
    "in": "query",
    "description": (
        "Start at the first event stored at or after this time: ISO 8601 (UTC unless a zone "
        "is given) or epoch milliseconds. Not with a resume token."
    ),
    "schema": {"type": "string"},
    "examples": {
        "iso": {"value": "2026-11-30T04:16:00Z"},
        "epoch": {"value": "1796011360000"},
    },
}
_SESSION = _path("session_id", "Session id")


class _Security:
    """Who may call an operation: the bearer header; on GET also the cookie and the query."""

    def __init__(self, required: bool) -> None:
        self._required = required

    def __call__(self, scope: str, *, get: bool) -> list[dict[str, list[str]]]:
        schemes = ("bearer", "cookie", "query") if get else ("bearer",)
        found: list[dict[str, list[str]]] = [{name: [scope]} for name in schemes]
        if not self._required:
            found.append({})  # AUTH_MODE=off: credentials are accepted but not needed
        return found


def paths(*, auth_required: bool, agents: list[str]) -> dict[str, dict[str, Operation]]:
    security = _Security(auth_required)
    read = security("events:read", get=True)
    return {
        "/v1/sessions": {"get": _list_sessions(read)},
        "/v1/sessions/{session_id}/stream": {"get": _stream(read)},
        "/v1/sessions/{session_id}/events": {
            "post": _append(security("events:write", get=False)),
            "get": _list_events(read),
        },
        "/v1/events/{event_id}": {"get": _get_event(read)},
        "/v1/traces/{trace_id}/events": {"get": _trace_events(read)},
        "/v1/sessions/{session_id}/messages": {"get": _messages(read)},
        "/v1/sessions/{session_id}/runs": {
            "post": _start_run(security("runs:write", get=False), agents)
        },
        "/v1/runs/{run_id}": {"get": _get_run(read)},
        "/v1/runs/{run_id}/cancel": {"post": _cancel_run(security("runs:write", get=False))},
        "/v1/agents": {"get": _agents(read)},
        **service_paths(),
    }


def _read_errors(*extra: str) -> dict[str, Any]:
    return errors(("bad_request", *AUTH_CODES, *extra, "unavailable"))


def _write_errors(*extra: str) -> dict[str, Any]:
    return errors(
        (
            "bad_request",
            *AUTH_CODES,
            *extra,
            "payload_too_large",
            "unsupported_media_type",
            "rate_limited",
            "unavailable",
        )
    )


def _list_sessions(security: list[dict[str, list[str]]]) -> Operation:
    return {
        "operationId": "listSessions",
        "tags": ["sessions"],
        "summary": "Recently active sessions the token covers, newest first",
        "security": security,
        "parameters": [
            _limit(SESSIONS_PAGE_DEFAULT),
            {
                "name": "before",
                "in": "query",
                "description": "The `next` cursor of the previous page.",
                "schema": {"type": "string"},
            },
        ],
        "responses": {
            "200": json_response("A page of sessions.", ref("Sessions")),
            **_read_errors(),
        },
    }


def _stream(security: list[dict[str, list[str]]]) -> Operation:
    resume = "A resume token (an event's `id`); the stream goes on after it. Empty: none."
    return {
        "operationId": "streamEvents",
        "tags": ["events"],
        "summary": "Follow a session live over Server-Sent Events",
        "description": (
            "The retained history from the position given (from the start when none), then live "
            "events, in the session's one order. Frames: `retry: <ms>` first; per stored event "
            "`id: <resume token>`, `event: <type>`, `data: <Event JSON>`; `: keep-alive` "
            "comments every SSE_HEARTBEAT seconds. Control events carry no `id`: "
            "`stream.history_lost` (the position is older than retained history; the stream "
            "goes on from the oldest retained event) and `stream.reconnect` (the last frame "
            "before the server closes, with `reason` timeout, slow_consumer, shutdown, "
            "unavailable or token_expired, and the `last_event_id` to reconnect with). "
            "`EventSource` cannot send headers: use the `agentstream_token` cookie or the "
            "`access_token` query parameter."
        ),
        "security": security,
        "parameters": [
            _SESSION,
            {
                "name": "Last-Event-ID",
                "in": "header",
                "description": resume + " Wins over `last_event_id`.",
                "schema": token(resume, empty=True),
            },
            {
                "name": "last_event_id",
                "in": "query",
                "description": resume,
                "schema": token(resume, empty=True),
            },
            _SINCE,
        ],
        "responses": {
            "200": {
                "description": "The event stream; each item below is one event as parsed.",
                "content": {"text/event-stream": {"schema": ref("StreamEvent")}},
            },
            **errors(
                (
                    "bad_request",
                    *AUTH_CODES,
                    "not_found",
                    "too_many_streams",
                    "over_capacity",
                    "unavailable",
                )
            ),
        },
    }


def _append(security: list[dict[str, list[str]]]) -> Operation:
    return {
        "operationId": "appendEvents",
        "tags": ["events"],
        "summary": "Append one event, or a batch, to a session",
        "description": (
            "Idempotent on `event_id`: an event whose id is already stored in this session is "
            "not stored again, and its stored copy is returned (409 when the id belongs to "
            "another session, or comes back with a different payload)."
        ),
        "security": security,
        "parameters": [_SESSION],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"oneOf": [ref("NewEvent"), ref("NewEventBatch")]}}
            },
        },
        "responses": {
            "201": {
                **json_response("Stored, in the order given.", ref("Appended")),
                "links": {
                    "GetEvent": {
                        "operationId": "getEvent",
                        "parameters": {"event_id": "$response.body#/events/0/event_id"},
                        "description": "The first event just stored.",
                    }
                },
            },
            **_write_errors("reserved_type", "not_found", "conflict"),
        },
    }


def _list_events(security: list[dict[str, list[str]]]) -> Operation:
    after = "Resume token: the page starts after this event. Not with since_timestamp."
    return {
        "operationId": "listEvents",
        "tags": ["events"],
        "summary": "A page of a session's stored events, in order",
        "security": security,
        "parameters": [
            _SESSION,
            {
                "name": "after",
                "in": "query",
                "description": after,
                "schema": token(after, empty=True),
            },
            _SINCE,
            _limit(PAGE_DEFAULT),
        ],
        "responses": {
            "200": json_response("Events, and `next` when there may be more.", ref("EventPage")),
            **_read_errors("not_found"),
        },
    }


def _get_event(security: list[dict[str, list[str]]]) -> Operation:
    return {
        "operationId": "getEvent",
        "tags": ["events"],
        "summary": "One event by its event_id",
        "security": security,
        "parameters": [
            {
                "name": "event_id",
                "in": "path",
                "required": True,
                "schema": {
                    **identifier("Event id"),
                    "pattern": LOOKUP_ID_PATTERN,
                    "description": "Event id: a client's (1-128 of [A-Za-z0-9._:-]) or one the"
                    " service derives from a run (`<run_id>~<step>`).",
                },
            }
        ],
        "responses": {
            "200": json_response("The event.", ref("Event")),
            **_read_errors("not_found"),
        },
    }


def _trace_events(security: list[dict[str, list[str]]]) -> Operation:
    return {
        "operationId": "traceEvents",
        "tags": ["events"],
        "summary": "The events of one trace, across the sessions the token covers",
        "security": security,
        "parameters": [
            _path("trace_id", "Trace id"),
            {
                "name": "after",
                "in": "query",
                "description": "The `next` cursor of the previous page.",
                "schema": {"type": "string"},
            },
            _limit(TRACE_PAGE_DEFAULT),
        ],
        "responses": {
            "200": json_response("The trace's events.", ref("TraceEvents")),
            **_read_errors("not_found"),
        },
    }


def _messages(security: list[dict[str, list[str]]]) -> Operation:
    return {
        "operationId": "listMessages",
        "tags": ["messages"],
        "summary": "A session's messages in the order written; parent_id gives the tree",
        "security": security,
        "parameters": [_SESSION, _limit(MAX_LIST, MAX_LIST)],
        "responses": {
            "200": json_response("The messages.", ref("Messages")),
            **_read_errors("not_found"),
        },
    }


def _run_links() -> dict[str, Any]:
    run_id = {"run_id": "$response.body#/run_id"}
    return {
        "GetRun": {"operationId": "getRun", "parameters": run_id},
        "CancelRun": {"operationId": "cancelRun", "parameters": run_id},
    }


def _start_run(security: list[dict[str, list[str]]], agents: list[str]) -> Operation:
    body: Schema = {
        "allOf": [
            ref("StartRun"),
            {"properties": {"agent": {"enum": agents}}},
        ]
    }
    return {
        "operationId": "startRun",
        "tags": ["runs"],
        "summary": "Enqueue an agent run in a session",
        "description": (
            "Recorded as `queued`, its `run.queued` event written, then enqueued. Posting the "
            "same `run_id` again returns the same run."
        ),
        "security": security,
        "parameters": [_SESSION],
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {
            "202": {
                **json_response("Queued.", ref("RunStarted")),
                "headers": {
                    "Location": {
                        "description": "The run: /v1/runs/{run_id}",
                        "schema": {"type": "string"},
                    }
                },
                "links": _run_links(),
            },
            **_write_errors("unknown_agent", "invalid_input", "not_found", "conflict"),
        },
    }


def _get_run(security: list[dict[str, list[str]]]) -> Operation:
    return {
        "operationId": "getRun",
        "tags": ["runs"],
        "summary": "A run's record",
        "security": security,
        "parameters": [_path("run_id", "Run id")],
        "responses": {
            "200": json_response("The run.", ref("Run")),
            **_read_errors("not_found"),
        },
    }


def _cancel_run(security: list[dict[str, list[str]]]) -> Operation:
    return {
        "operationId": "cancelRun",
        "tags": ["runs"],
        "summary": "Cancel a queued or running run",
        "security": security,
        "parameters": [_path("run_id", "Run id")],
        "responses": {
            "200": json_response("A queued run, cancelled now.", ref("Run")),
            "202": json_response("A running run, asked to stop.", ref("Run")),
            **errors(
                ("bad_request", *AUTH_CODES, "not_found", "conflict", "rate_limited", "unavailable")
            ),
        },
    }


def _agents(security: list[dict[str, list[str]]]) -> Operation:
    return {
        "operationId": "listAgents",
        "tags": ["runs"],
        "summary": "The configured agents",
        "security": security,
        "responses": {
            "200": json_response("The agents.", ref("Agents")),
            **errors(AUTH_CODES),
        },
    }
