"""Small exception classes for client errors, mapped to the JSON error shape in one place.

This is also the one place where an outage becomes an answer: any PyMongo or Redis error that
reaches a handler is a 503 `unavailable` with `Retry-After`, never a 500. (The drivers'
timeouts, set from REQUEST_TIMEOUT in app/mongo.py and app/jobs.py, make sure it arrives.)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, ClassVar

from pymongo.errors import ConnectionFailure, ExecutionTimeout, PyMongoError, WTimeoutError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeout
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)


UNAVAILABLE_RETRY_AFTER = 2  # seconds a client waits after an outage answer


def retry_after(seconds: float) -> int:
    """`Retry-After` is always whole seconds, at least 1."""
    return max(1, math.ceil(seconds))


class APIError(Exception):
    """An error the client can act on. Subclasses fix the status and the code.

    `retry_after` (seconds), when set, becomes a `Retry-After` header of whole seconds.
    """

    status = 400
    code = "bad_request"
    headers: ClassVar[dict[str, str]] = {}

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after

    def response(self) -> JSONResponse:
        response = error_response(self.status, self.code, self.message, retry=self.retry_after)
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

    def __init__(self, message: str, *, retry_after: float | None = UNAVAILABLE_RETRY_AFTER):
        super().__init__(message, retry_after=retry_after)


class OverCapacity(APIError):
    """SSE_MAX_CONNECTIONS streams are open in this process."""

    status = 503
    code = "over_capacity"


class TooManyStreams(APIError):
    """The subject holds SSE_MAX_CONNECTIONS_PER_SUBJECT streams in this process."""

    status = 429
    code = "too_many_streams"


class RateLimited(APIError):
    """The subject writes faster than WRITE_RATE_LIMIT."""

    status = 429
    code = "rate_limited"


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    503: "unavailable",
}


def error_response(
    status: int, code: str, message: str, *, retry: float | None = None
) -> JSONResponse:
    headers = None if retry is None else {"Retry-After": str(retry_after(retry))}
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


async def api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return exc.response()


def dependency_of(exc: BaseException) -> str | None:
    """The backend `exc` comes from: "mongo", "redis", or None."""
    if isinstance(exc, PyMongoError):
        return "mongo"
    if isinstance(exc, RedisError):
        return "redis"
    return None


def _transient(exc: Exception) -> bool:
    """An outage or a timeout, as opposed to an error the service itself caused."""
    if isinstance(exc, RedisError):
        return isinstance(exc, RedisConnectionError | RedisTimeout)
    if isinstance(exc, ConnectionFailure | ExecutionTimeout | WTimeoutError):
        return True
    return isinstance(exc, PyMongoError) and exc.timeout


async def unavailable_handler(request: Request, exc: Exception) -> Response:
    """A MongoDB or Redis error during a request: 503 `unavailable`, with Retry-After."""
    dependency = dependency_of(exc) or "backend"
    where = f"{request.method} {request.url.path}"
    if _transient(exc):
        logger.warning("%s unavailable on %s: %s", dependency, where, exc)
    else:
        logger.error("%s error on %s", dependency, where, exc_info=exc)
    services = getattr(request.app.state, "services", None)
    if services is not None:
        services.metrics.unavailable.labels(dependency).inc()
    name = "MongoDB" if dependency == "mongo" else "Redis"
    return error_response(
        503,
        "unavailable",
        f"{name} is unavailable or did not answer in time; retry after the delay given",
        retry=UNAVAILABLE_RETRY_AFTER,
    )


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    response = error_response(exc.status_code, code, str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
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


type Handler = Callable[[Any, Exception], Coroutine[Any, Any, Response]]

HANDLERS: dict[Any, Handler] = {
    APIError: api_error_handler,
    HTTPException: http_error_handler,
    PyMongoError: unavailable_handler,
    RedisError: unavailable_handler,
}
