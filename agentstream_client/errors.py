"""What the client raises: the API's own errors, and an API that cannot be reached."""

from __future__ import annotations

import contextlib
from typing import Any

import httpx


class ClientError(Exception):
    """Anything the client gives up on."""


class APIError(ClientError):
    """The API answered with an error: `{"error": {"code", "message"}}` and an HTTP status."""

    def __init__(
        self, status: int, code: str, message: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after  # seconds, from Retry-After on 429 and 503


class Unreachable(ClientError):
    """No answer from the API (connection refused, reset, timed out)."""


def error_from_response(response: httpx.Response) -> APIError:
    """The APIError an error answer stands for (its JSON error, else its status line)."""
    code, message = "http_error", response.reason_phrase or f"HTTP {response.status_code}"
    with contextlib.suppress(ValueError, AttributeError, TypeError, KeyError):
        found: Any = response.json()["error"]
        code, message = str(found["code"]), str(found["message"])
    retry_after = None
    with contextlib.suppress(TypeError, ValueError):
        retry_after = float(response.headers.get("retry-after"))
    return APIError(response.status_code, code, message, retry_after=retry_after)
