"""Messages: a session's messages in the order they were written."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.responses import JSONResponse, Response

from app.auth.policy import Access, Scope
from app.auth.routes import ProtectedRoute
from app.services import services
from app.store.codec import message_view
from app.store.messages import MAX_LIST, MessageStore
from app.validation import bounded_int, identifier

if TYPE_CHECKING:
    from starlette.requests import Request


async def list_messages(request: Request) -> Response:
    svc = services(request)
    session_id = identifier(request.path_params["session_id"], "session_id")
    limit = bounded_int(request.query_params.get("limit"), "limit", 1, MAX_LIST, MAX_LIST)
    docs = await MessageStore(svc.collections).list(session_id, limit)
    return JSONResponse({"messages": [message_view(doc) for doc in docs]})


routes = [
    ProtectedRoute(
        "/v1/sessions/{session_id}/messages",
        list_messages,
        methods=["GET"],
        access=Access(Scope.EVENTS_READ),
    ),
]
