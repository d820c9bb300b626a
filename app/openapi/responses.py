"""The error answers: one shape, a status and the codes each status can carry.

An operation names the error codes it can give; `errors()` turns them into responses whose
schema pins `error.code` to those codes, with the headers the contract promises
(`WWW-Authenticate` on 401, `Retry-After` on 429 and 503).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from app.openapi.schemas import Schema, ref

# Every error code, by the status it comes with (DESIGN.md: HTTP API, Access control, Limits).
CODES: dict[str, tuple[int, str]] = {
    "bad_request": (400, "A parameter or the body is not what this operation takes."),
    "reserved_type": (400, "An event type starting with 'run.' or 'stream.' (the service's own)."),
    "unknown_agent": (400, "No agent of that name is configured."),
    "invalid_input": (400, "The input is not what the agent takes."),
    "unauthorized": (401, "Missing, malformed, badly signed or expired token."),
    "forbidden": (403, "The token lacks the scope or does not cover the session."),
    "not_found": (
        404,
        "Nothing with that id in the sessions the token covers (or an id that cannot be in "
        "this path).",
    ),
    "conflict": (409, "The id is taken by something else, or the run has already ended."),
    "payload_too_large": (413, "The body, an event or a run's input is over its limit."),
    "unsupported_media_type": (415, "The body is not application/json."),
    "too_many_streams": (429, "Too many open streams for this subject on this process."),
    "rate_limited": (429, "Over WRITE_RATE_LIMIT events per second for this subject."),
    "over_capacity": (503, "This process has SSE_MAX_CONNECTIONS streams open."),
    "unavailable": (503, "MongoDB or Redis did not answer within REQUEST_TIMEOUT."),
}

# Codes every operation behind the token check can give.
AUTH_CODES = ("unauthorized", "forbidden")

_RETRY_AFTER = {
    "description": "Whole seconds to wait before trying again.",
    "schema": {"type": "integer", "minimum": 0},
}
_WWW_AUTHENTICATE = {
    "description": '`Bearer`, with `error="invalid_token"` when a token was given.',
    "schema": {"type": "string", "pattern": "^Bearer"},
}


def errors(codes: Iterable[str]) -> dict[str, Any]:
    """The error responses for `codes`, keyed by status."""
    by_status: dict[int, list[str]] = {}
    for code in codes:
        status, _ = CODES[code]
        by_status.setdefault(status, []).append(code)
    responses: dict[str, Any] = {}
    for status in sorted(by_status):
        found = by_status[status]
        schema: Schema = {
            "allOf": [
                ref("Error"),
                {"properties": {"error": {"properties": {"code": {"enum": found}}}}},
            ]
        }
        response: dict[str, Any] = {
            "description": " ".join(f"`{code}`: {CODES[code][1]}" for code in found),
            "content": {"application/json": {"schema": schema}},
        }
        if status == 401:
            response["headers"] = {"WWW-Authenticate": _WWW_AUTHENTICATE}
        if status in (429, 503):
            response["headers"] = {"Retry-After": _RETRY_AFTER}
        responses[str(status)] = response
    return responses


def json_response(description: str, schema: Schema, **extra: Any) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
        **extra,
    }
