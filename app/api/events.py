"""Events: append, stream, page through history, look up by id and by trace."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import orjson
import pymongo
from starlette.responses import JSONResponse, Response

from app.auth.middleware import check_found, principal_of, visible_sessions
from app.auth.policy import Access, Scope, SessionRule
from app.auth.routes import ProtectedRoute
from app.errors import BadRequest, NotFound, PayloadTooLarge, ReservedType, UnsupportedMediaType
from app.limits import subject_of
from app.services import Services, services
from app.store import tokens
from app.store.codec import event_view
from app.store.events import MAX_BATCH, RESERVED_TYPE_PREFIXES, NewEvent
from app.stream import EventStream, Start
from app.validation import (
    INT64_MAX,
    INT64_MIN,
    bounded_int,
    format_timestamp,
    identifier,
    lookup_event_id,
    timestamp,
)

if TYPE_CHECKING:
    from starlette.requests import Request

# Page sizes (`limit`), also what /openapi.json says.
PAGE_MAX = 1000
PAGE_DEFAULT = 100
TRACE_PAGE_DEFAULT = 1000


async def read_json(request: Request, max_bytes: int) -> Any:
    """The request body as JSON: 415 unless JSON, 413 over `max_bytes`, 400 when malformed.

    The Content-Type must say JSON: a missing or empty one is refused, so a page on another
    site cannot write with a request that needs no CORS preflight.
    """
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise UnsupportedMediaType("the body must be sent with Content-Type: application/json")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise PayloadTooLarge(f"the body is over {max_bytes} bytes")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    if _has_huge_float(value):
        # orjson reads an integer beyond 64 bits as a float; only the text tells which it was.
        try:
            json.loads(body, parse_int=_int64)
        except RecursionError:
            raise BadRequest("the body is nested too deeply") from None
    return value


def _has_huge_float(value: object) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float) and abs(item) >= 2.0**63:
            return True
    return False


def _int64(text: str) -> int:
    if len(text.lstrip("-")) > 19 or not INT64_MIN <= int(text) <= INT64_MAX:
        raise BadRequest(f"the body holds an integer outside the 64-bit signed range: {text}")
    return int(text)


async def append_events(request: Request) -> Response:
    svc = services(request)
    session_id = identifier(request.path_params["session_id"], "session_id")
    body = await read_json(request, svc.settings.max_body_bytes)
    if isinstance(body, dict) and "events" in body:
        if set(body) != {"events"}:
            raise BadRequest("a batch body holds only the field 'events'")
        items = body["events"]
        if not isinstance(items, list) or not items:
            raise BadRequest("events must be a non-empty array")
        if len(items) > MAX_BATCH:
            raise BadRequest(f"at most {MAX_BATCH} events per request")
        events = [NewEvent.parse(item, where=f"events[{i}]") for i, item in enumerate(items)]
    else:
        events = [NewEvent.parse(body)]
    for event in events:
        if event.type.startswith(RESERVED_TYPE_PREFIXES):
            raise ReservedType(
                f"event type {event.type} is reserved: run.* and stream.* belong to the service"
            )
    svc.write_rate.take(subject_of(request.scope), len(events))
    stored = await svc.writer.append(session_id, events, exact_retries=True)
    return JSONResponse(
        {
            "events": [
                {
                    "event_id": doc["event_id"],
                    "id": tokens.encode(session_id, doc["seq"]),
                    "timestamp": format_timestamp(doc["timestamp"]),
                }
                for doc in stored
            ]
        },
        status_code=201,
    )


async def stream_events(request: Request) -> Response:
    svc = services(request)
    session_id = identifier(request.path_params["session_id"], "session_id")
    # The caps decide before anything is read or sent: 503 over_capacity, 429 too_many_streams.
    slot = svc.stream_slots.reserve(subject_of(request.scope))
    try:
        with pymongo.timeout(svc.settings.request_timeout):
            start = await resolve_start(svc, session_id, request)
    except BaseException:
        slot.release()
        raise
    expires_at = principal_of(request).expires_at
    return EventStream(svc, session_id, start, slot, expires_at=expires_at)  # type: ignore[return-value]


async def resolve_start(svc: Services, session_id: str, request: Request) -> Start:
    """Where a stream starts: Last-Event-ID, else last_event_id, else since_timestamp.

    The id wins over the time: a reconnecting EventSource repeats its URL, since_timestamp
    included, and adds the Last-Event-ID header.
    """
    query = request.query_params
    token = request.headers.get("last-event-id") or query.get("last_event_id")
    if token:
        return await _token_start(svc, session_id, token)
    since = query.get("since_timestamp")
    if since:
        return await _since_start(svc, session_id, since)
    return Start(0)


async def _token_start(svc: Services, session_id: str, token: str) -> Start:
    position = tokens.decode(session_id, token)
    bounds = await svc.history.bounds(session_id)
    if position > bounds.last:
        # Not history lost: the session never reached this position (it was reset, or its
        # counter expired with its events). The stream goes on live from the session's end.
        return Start(bounds.last, _ahead(session_id, token, bounds.last))
    if bounds.first is not None and bounds.first > position + 1:
        return Start(bounds.first - 1, _lost(session_id, token, bounds.first - 1))
    if bounds.first is None and bounds.last > position:
        return Start(bounds.last, _lost(session_id, token, bounds.last))
    return Start(position)


async def _since_start(svc: Services, session_id: str, since: str) -> Start:
    when = timestamp(since)
    history = svc.history
    before = await history.position_before(session_id, when)
    if before is not None:
        return Start(before)
    bounds = await history.bounds(session_id)
    if bounds.first is not None and bounds.first > 1:
        return Start(bounds.first - 1, _lost(session_id, since, bounds.first - 1))
    return Start(0 if bounds.first is not None else bounds.last)


def _lost(session_id: str, requested: str, resumed: int) -> dict[str, object]:
    return {
        "reason": "expired",
        "requested": requested,
        "resumed_after": tokens.encode(session_id, resumed) if resumed else None,
        "message": "events before the resume point are no longer retained",
    }


def _ahead(session_id: str, requested: str, last: int) -> dict[str, object]:
    return {
        "reason": "ahead",
        "requested": requested,
        "resumed_after": tokens.encode(session_id, last) if last else None,
        "message": (
            "the resume point is beyond the session's last event (the session was reset or"
            " the id is stale); the stream goes on live from the session's end"
        ),
    }


async def list_events(request: Request) -> Response:
    svc = services(request)
    session_id = identifier(request.path_params["session_id"], "session_id")
    query = request.query_params
    limit = bounded_int(query.get("limit"), "limit", 1, PAGE_MAX, PAGE_DEFAULT)
    after = query.get("after")
    if after and query.get("since_timestamp"):
        raise BadRequest("give either after or since_timestamp, not both")
    if after:
        position = tokens.decode(session_id, after, "after")
    elif query.get("since_timestamp"):
        position = (await _since_start(svc, session_id, query["since_timestamp"])).position
    else:
        position = 0
    docs = await svc.history.after(session_id, position, limit)
    events = [event_view(doc) for doc in docs if not doc.get("void")]
    next_token = tokens.encode(session_id, docs[-1]["seq"]) if len(docs) == limit else None
    return JSONResponse({"events": events, "next": next_token})


async def get_event(request: Request) -> Response:
    svc = services(request)
    event_id = lookup_event_id(request.path_params["event_id"])
    missing = NotFound(f"no event {event_id}")
    doc = await svc.history.by_event_id(event_id)
    if doc is None:
        raise missing
    check_found(request, doc["session_id"], missing)
    return JSONResponse(event_view(doc))


async def trace_events(request: Request) -> Response:
    svc = services(request)
    trace_id = identifier(request.path_params["trace_id"], "trace_id")
    query = request.query_params
    limit = bounded_int(query.get("limit"), "limit", 1, PAGE_MAX, TRACE_PAGE_DEFAULT)
    after = query.get("after")
    cursor = tokens.TraceCursor.decode(after) if after else None
    docs = await svc.history.by_trace(trace_id, limit, visible_sessions(request), cursor)
    next_cursor = tokens.TraceCursor.of(docs[-1]).encode() if len(docs) == limit else None
    events = [event_view(doc) for doc in docs if not doc.get("void")]
    return JSONResponse({"events": events, "next": next_cursor})


_READ = Access(Scope.EVENTS_READ)

routes = [
    ProtectedRoute(
        "/v1/sessions/{session_id}/stream", stream_events, methods=["GET"], access=_READ
    ),
    ProtectedRoute(
        "/v1/sessions/{session_id}/events",
        append_events,
        methods=["POST"],
        access=Access(Scope.EVENTS_WRITE),
    ),
    ProtectedRoute("/v1/sessions/{session_id}/events", list_events, methods=["GET"], access=_READ),
    ProtectedRoute(
        "/v1/events/{event_id}",
        get_event,
        methods=["GET"],
        access=Access(Scope.EVENTS_READ, SessionRule.LOOKUP),
    ),
    ProtectedRoute(
        "/v1/traces/{trace_id}/events",
        trace_events,
        methods=["GET"],
        access=Access(Scope.EVENTS_READ, SessionRule.FILTER),
    ),
]
