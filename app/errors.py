"""Small exception classes for client errors, mapped to the JSON error shape in one place."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, ClassVar

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)


class APIError(Exception):
    """An error the client can act on. Subclasses fix the status and the code."""

    status = 400
    code = "bad_request"
    headers: ClassVar[dict[str, str]] = {}

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def response(self) -> JSONResponse:
        response = error_response(self.status, self.code, self.message)
        response.headers.update(self.headers)
        return response


class BadRequest(APIError):
    pass


class ReservedType(BadRequest):
    code = "reserved_type"


class Unauthorized(APIError):
    """No token, or one that is malformed, badly signed or expired."""

    status = 401
    code = "unauthorized"
    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": "Bearer"}


class Forbidden(APIError):
    """A valid token without the scope or the session."""

    status = 403
    code = "forbidden"


class NotFound(APIError):
    status = 404
    code = "not_found"


class Conflict(APIError):
    status = 409
    code = "conflict"


class PayloadTooLarge(APIError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(APIError):
    status = 415
    code = "unsupported_media_type"


class ServiceUnavailable(APIError):
    status = 503
    code = "unavailable"


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    503: "unavailable",
}


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return exc.response()


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    response = error_response(exc.status_code, code, str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def database_error_handler(request: Request, exc: Exception) -> Response:
    """MongoDB out of reach (no server, a timeout): 503 and when to retry, never a 500."""
    logger.warning("MongoDB unavailable on %s %s: %s", request.method, request.url.path, exc)
    response = error_response(503, "unavailable", "the database is unavailable; try again")
    response.headers["Retry-After"] = "1"
    return response


class InternalErrors:
    """The last line for unexpected errors: one log line with the traceback, then a 500.

    Starlette's own handler re-raises after answering, so uvicorn logged every error a second
    time. A client that goes away mid-body is not an error: one INFO line, and no answer.
    An error after the response started is left to uvicorn, which logs it and closes.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except ClientDisconnect:
            logger.info("client went away during %s %s", scope["method"], scope["path"])
        except Exception as exc:
            if started:
                raise
            logger.error("unhandled error on %s %s", scope["method"], scope["path"], exc_info=exc)
            await error_response(500, "internal", "internal server error")(scope, receive, send)
