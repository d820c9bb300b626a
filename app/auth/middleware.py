"""The one place every request passes through to have access decided (app.auth.policy).

For each request the middleware finds the route the app's router will run. A public route, an
unknown path (404) or a wrong method (405) goes on without a token. A `ProtectedRoute` needs a
verified token (401 otherwise), then `decide` answers for its scope and, for PATH routes, its
session (403). LOOKUP routes are decided by the handler once it knows the session, through
`check_found`; a guard turns a success answered without that check into a 500, so a handler
cannot forget it. FILTER routes read `visible_sessions` into their query.

The token comes from `Authorization: Bearer`, or, on GET and HEAD only, from the
`access_token` query parameter or the `agentstream_token` cookie (EventSource sends no
headers). A cookie or query token never authorizes a write. The `access_token` parameter is
removed from the request's query string before anything else sees it, logs included.

Set for the route: scope["agentstream.principal"] (a Principal), scope["agentstream.subject"]
(the token's `sub`; absent when AUTH_MODE=off), scope["agentstream.access"] (an Access).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.routing import BaseRoute, Match

from app.auth.policy import Access, Decision, Patterns, Principal, SessionRule, decide
from app.auth.routes import ProtectedRoute, is_public
from app.auth.verifier import InvalidToken, Verifier
from app.errors import APIError, Forbidden, NotFound, Unauthorized, error_response

if TYPE_CHECKING:
    from collections.abc import Sequence

    from starlette.requests import Request
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

PRINCIPAL = "agentstream.principal"
SUBJECT = "agentstream.subject"
ACCESS = "agentstream.access"
_CHECKED = "agentstream.checked"
COOKIE = "agentstream_token"
QUERY_PARAMETER = "access_token"
_SAFE_METHODS = ("GET", "HEAD")
_NO_TOKEN = (
    "a token is required: Authorization: Bearer <token> (GET requests also take the"
    f" {COOKIE} cookie or the {QUERY_PARAMETER} query parameter)"
)


class AuthMiddleware:
    def __init__(self, app: ASGIApp, *, verifier: Verifier | None) -> None:
        self.app = app
        self._verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        query_token = _take_query_token(scope)
        route, params = self._match(scope)
        if route is None or is_public(route):
            return await self.app(scope, receive, send)
        if not isinstance(route, ProtectedRoute):  # check_routes refuses these at start-up
            return await _deny(scope, receive, send, Forbidden("this route declares no access"))
        access = route.access
        if self._verifier is None:
            principal = Principal.everyone()
        else:
            try:
                token = _token(scope, query_token)
                principal = self._verifier.verify(token)
            except InvalidToken as exc:
                return await _deny(scope, receive, send, Unauthorized(str(exc)))
            scope[SUBJECT] = principal.subject
        scope[PRINCIPAL] = principal
        scope[ACCESS] = access
        if access.session is SessionRule.LOOKUP:
            return await self.app(scope, receive, _guard(scope, send))
        session_id = params.get(access.path_param) if access.session is SessionRule.PATH else None
        if decide(principal, access, session_id) is not Decision.ALLOW:
            return await _deny(scope, receive, send, _forbidden(principal, access, session_id))
        await self.app(scope, receive, send)

    def _match(self, scope: Scope) -> tuple[BaseRoute | None, dict[str, str]]:
        """The route the router will run, with its path parameters; None for a 404 or 405.

        The routes are the app's own (Starlette sets scope["app"]), routes added late included.
        """
        routes: Sequence[BaseRoute] = scope["app"].routes
        for route in routes:
            match, child = route.matches(scope)
            if match is Match.FULL:
                return route, dict(child.get("path_params", {}))
        return None, {}


def principal_of(request: Request) -> Principal:
    found: Principal = request.scope[PRINCIPAL]
    return found


def visible_sessions(request: Request) -> Patterns:
    """The sessions a FILTER route's query must keep to."""
    return principal_of(request).visible()


def check_found(request: Request, session_id: str, missing: NotFound) -> None:
    """A LOOKUP route's decision, once the thing looked up is known to be in `session_id`.

    Raises `missing` (the very error a missing thing gets) outside the token's sessions, and
    Forbidden without the route's scope.
    """
    principal, access = principal_of(request), request.scope[ACCESS]
    decision = decide(principal, access, session_id)
    if decision is Decision.NOT_FOUND:
        _count(request.scope, missing)
        raise missing
    if decision is Decision.FORBIDDEN:
        error = _forbidden(principal, access, session_id)
        _count(request.scope, error)
        raise error
    request.scope[_CHECKED] = True


def _forbidden(principal: Principal, access: Access, session_id: str | None) -> Forbidden:
    if not principal.has(access.scope):
        return Forbidden(f"the token does not grant the scope {access.scope.value}")
    return Forbidden(f"the token does not cover session {session_id}")


def _token(scope: Scope, query_token: str | None) -> str:
    headers = Headers(scope=scope)
    authorization = headers.get("authorization")
    if authorization is not None:
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise InvalidToken("the Authorization header must be: Bearer <token>")
        return credentials.strip()
    cookie = cookie_parser(headers.get("cookie", "")).get(COOKIE)
    if scope["method"] not in _SAFE_METHODS:
        if query_token or cookie:
            raise InvalidToken(
                "a write needs Authorization: Bearer <token>; cookie and query tokens are"
                " accepted on GET only"
            )
        raise InvalidToken(_NO_TOKEN)
    token = query_token or cookie
    if not token:
        raise InvalidToken(_NO_TOKEN)
    return token


def _take_query_token(scope: Scope) -> str | None:
    """Remove `access_token` from the query string (in place: the server's scope too)."""
    raw: bytes = scope.get("query_string", b"")
    if b"access" not in raw.lower():
        return None
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    kept = [(name, value) for name, value in pairs if name != QUERY_PARAMETER]
    if len(kept) == len(pairs):
        return None
    scope["query_string"] = urlencode(kept).encode("latin-1")
    return next((value for name, value in pairs if name == QUERY_PARAMETER), None)


def _guard(scope: Scope, send: Send) -> Send:
    """`send` for a LOOKUP route: a success without `check_found` becomes a 500."""
    blocked = False

    async def guarded(message: Message) -> None:
        nonlocal blocked
        if blocked:
            return
        if (
            message["type"] == "http.response.start"
            and message["status"] < 400
            and not scope.get(_CHECKED)
        ):
            blocked = True
            logger.error(
                "%s %s answered without check_found: refused", scope["method"], scope["path"]
            )
            response = error_response(500, "internal", "internal server error")
            await response({"type": "http"}, _no_body, send)
            return
        await send(message)

    return guarded


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _deny(scope: Scope, receive: Receive, send: Send, error: APIError) -> None:
    _count(scope, error)
    logger.debug("%s %s: %d %s", scope["method"], scope["path"], error.status, error.message)
    await error.response()(scope, receive, send)


def _count(scope: Scope, error: APIError) -> None:
    services = getattr(getattr(scope.get("app"), "state", None), "services", None)
    if services is not None:
        services.metrics.auth_denials.labels(error.code).inc()
