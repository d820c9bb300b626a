"""GET /v1/sessions: recently active sessions the token covers, newest first."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.responses import JSONResponse, Response

from app.auth.middleware import visible_sessions
from app.auth.policy import Access, Scope, SessionRule
from app.auth.routes import ProtectedRoute
from app.services import services
from app.store import tokens
from app.store.sessions import Cursor, SessionIndex
from app.validation import bounded_int, format_timestamp

if TYPE_CHECKING:
    from starlette.requests import Request


async def list_sessions(request: Request) -> Response:
    query = request.query_params
    limit = bounded_int(query.get("limit"), "limit", 1, 1000, 50)
    raw_before = query.get("before")
    before = Cursor.parse(raw_before) if raw_before else None
    index = SessionIndex(services(request).collections)
    docs = await index.recent(visible_sessions(request), limit, before)
    sessions = [
        {
            "session_id": doc["_id"],
            "updated_at": format_timestamp(doc["updated_at"]),
            "last_event_id": tokens.encode(doc["_id"], doc["seq"]) if doc.get("seq") else None,
        }
        for doc in docs
    ]
    next_cursor = str(Cursor.of(docs[-1])) if len(docs) == limit else None
    return JSONResponse({"sessions": sessions, "next": next_cursor})


routes = [
    ProtectedRoute(
        "/v1/sessions",
        list_sessions,
        methods=["GET"],
        access=Access(Scope.EVENTS_READ, SessionRule.FILTER),
    ),
]
