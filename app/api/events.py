"""Events: append, stream, page through history, look up by id and by trace."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
import pymongo
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.errors import BadRequest, NotFound, PayloadTooLarge, UnsupportedMediaType
from app.limits import subject_of
from app.services import Services, services
from app.store import tokens
from app.store.codec import event_view
from app.store.events import MAX_BATCH, NewEvent
from app.stream import EventStream, Start
from app.validation import bounded_int, format_timestamp, identifier, timestamp

if TYPE_CHECKING:
    from starlette.requests import Request


async def read_json(request: Request, max_bytes: int) -> Any:
    """The request body as JSON: 415 unless JSON, 413 over `max_bytes`, 400 when malformed."""
    content_type = request.headers.get("content-type", "application/json")
    if content_type.split(";")[0].strip().lower() not in ("application/json", ""):
        raise UnsupportedMediaType("the body must be application/json")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise PayloadTooLarge(f"the body is over {max_bytes} bytes")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None


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
    svc.write_rate.take(subject_of(request.scope), len(events))
    stored = await svc.writer.append(session_id, events)
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
    return EventStream(svc, session_id, start, slot)  # type: ignore[return-value]


async def resolve_start(svc: Services, session_id: str, request: Request) -> Start:
    """Where a stream or page starts: Last-Event-ID, then last_event_id, then since_timestamp."""
    query = request.query_params
    token = request.headers.get("last-event-id") or query.get("last_event_id")
    since = query.get("since_timestamp")
    if token and since:
        raise BadRequest("give either a last event id or since_timestamp, not both")
    history = svc.history
    if token:
        position = tokens.decode(session_id, token)
        bounds = await history.bounds(session_id)
        if position > bounds.last:
            first = (bounds.first or 1) - 1
            return Start(first, _lost(session_id, token, first, "unknown position"))
        if bounds.first is not None and bounds.first > position + 1:
            return Start(bounds.first - 1, _lost(session_id, token, bounds.first - 1, "expired"))
        if bounds.first is None and bounds.last > position:
            return Start(bounds.last, _lost(session_id, token, bounds.last, "expired"))
        return Start(position)
    if since:
        when = timestamp(since)
        before = await history.position_before(session_id, when)
        if before is not None:
            return Start(before)
        bounds = await history.bounds(session_id)
        if bounds.first is not None and bounds.first > 1:
            return Start(bounds.first - 1, _lost(session_id, since, bounds.first - 1, "expired"))
        return Start(0 if bounds.first is not None else bounds.last)
    return Start(0)


def _lost(session_id: str, requested: str, resumed: int, reason: str) -> dict[str, object]:
    return {
        "reason": reason,
        "requested": requested,
        "resumed_after": tokens.encode(session_id, resumed) if resumed else None,
        "message": "events before the resume point are no longer retained",
    }


async def list_events(request: Request) -> Response:
    svc = services(request)
    session_id = identifier(request.path_params["session_id"], "session_id")
    query = request.query_params
    limit = bounded_int(query.get("limit"), "limit", 1, 1000, 100)
    after = query.get("after")
    if after and query.get("since_timestamp"):
        raise BadRequest("give either after or since_timestamp, not both")
    if after:
        position = tokens.decode(session_id, after, "after")
    elif query.get("since_timestamp"):
        position = (await resolve_start(svc, session_id, request)).position
    else:
        position = 0
    docs = await svc.history.after(session_id, position, limit)
    events = [event_view(doc) for doc in docs if not doc.get("void")]
    next_token = tokens.encode(session_id, docs[-1]["seq"]) if len(docs) == limit else None
    return JSONResponse({"events": events, "next": next_token})


async def get_event(request: Request) -> Response:
    svc = services(request)
    event_id = identifier(request.path_params["event_id"], "event_id")
    doc = await svc.history.by_event_id(event_id)
    if doc is None:
        raise NotFound(f"no event {event_id}")
    return JSONResponse(event_view(doc))


async def trace_events(request: Request) -> Response:
    svc = services(request)
    trace_id = identifier(request.path_params["trace_id"], "trace_id")
    limit = bounded_int(request.query_params.get("limit"), "limit", 1, 1000, 1000)
    docs = await svc.history.by_trace(trace_id, limit)
    return JSONResponse({"events": [event_view(doc) for doc in docs if not doc.get("void")]})


routes = [
    Route("/v1/sessions/{session_id}/stream", stream_events, methods=["GET"]),
    Route("/v1/sessions/{session_id}/events", append_events, methods=["POST"]),
    Route("/v1/sessions/{session_id}/events", list_events, methods=["GET"]),
    Route("/v1/events/{event_id}", get_event, methods=["GET"]),
    Route("/v1/traces/{trace_id}/events", trace_events, methods=["GET"]),
]
