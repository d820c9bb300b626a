"""OpenAPI 3.1 for the whole HTTP API, generated in Python from the rules the service enforces.

Mechanism: the document is built once per app from code, not written by hand. Patterns, lengths
and limits are imported from the modules that enforce them (`app.validation`, `app.store`,
`app.api.events`, `app.jobs`), the agents come from the same registry that checks a run's
`agent`, and the security requirements follow the auth mode. So the validators and the
document cannot drift apart: a change to a rule changes both, and the suite fuzzes the live
service against the document (tests/openapi) to catch what code review would not.

Invariant: everything the document calls invalid, the service rejects with a 4xx; every status
and body the service answers with is in the document.
"""

from __future__ import annotations

import importlib.metadata
from typing import TYPE_CHECKING, Any

from app.openapi import schemas
from app.openapi.paths import paths
from worker.agents import Registry

if TYPE_CHECKING:
    from app.settings import Settings

OPENAPI_VERSION = "3.1.1"

_DESCRIPTION = """\
Streams what AI agents do (token deltas, tool calls, status changes, messages) over
Server-Sent Events. Every event of a session has a resume token, its `id`
(`<position>.<8 hex session tag>`); a client that reconnects with it misses nothing.

Errors are always `{"error": {"code", "message"}}`. Timestamps are ISO 8601 in UTC with
milliseconds and a trailing `Z`. Ids are 1-128 characters from `[A-Za-z0-9._:-]`.

Access: a JWT as `Authorization: Bearer <jwt>`. `EventSource` cannot send headers, so GET
requests also accept the `agentstream_token` cookie and the `access_token` query parameter.
Scopes: `events:read`, `events:write`, `runs:write`, `admin`; the token's `sessions` claim
names the sessions it covers. Lookups by id outside them answer 404, so existence is not
revealed. Limits answer 413, 429 and 503, the last two with `Retry-After` in whole seconds.
"""


def auth_required(settings: Settings) -> bool:
    """Whether requests need a token: AUTH_MODE=jwt. Without an auth mode, none is needed."""
    # AUTH_MODE arrives with access control; until then the service serves everyone.
    mode = getattr(settings, "auth_mode", "off")
    return str(getattr(mode, "value", mode)) == "jwt"


def build_document(settings: Settings) -> dict[str, Any]:
    """The document for an app built from `settings`: its auth mode, its agents."""
    return document(
        auth_required=auth_required(settings), agents=Registry.from_settings(settings).names()
    )


def document(*, auth_required: bool, agents: list[str]) -> dict[str, Any]:
    required = auth_required
    mode = "jwt, every /v1 request needs a token" if required else "off, no token is needed"
    return {
        "openapi": OPENAPI_VERSION,
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "agentstream",
            "version": _version(),
            "summary": "Live streams of what AI agents do, over Server-Sent Events.",
            "description": f"{_paragraphs(_DESCRIPTION)}\n\nThis server: AUTH_MODE={mode}.",
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "servers": [{"url": "/"}],
        "tags": [
            {"name": "events", "description": "Append, stream and read a session's events."},
            {"name": "sessions", "description": "Which sessions are active."},
            {"name": "messages", "description": "The messages agents wrote."},
            {"name": "runs", "description": "Agent runs: start, follow, cancel."},
            {"name": "service", "description": "Health, metrics and these docs; no token."},
        ],
        "paths": paths(auth_required=required, agents=agents),
        "components": {
            "schemas": schemas.components(),
            "securitySchemes": _security_schemes(),
        },
    }


def _security_schemes() -> dict[str, Any]:
    get_only = "GET requests only (for EventSource, which cannot send headers)."
    return {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": (
                "`Authorization: Bearer <jwt>`, signed as the server is configured (HS256 "
                "secret, or an RS256/ES256 public key). Claims: `sub`, `exp`, `scope` "
                "(space-separated), `sessions` (exact ids, `prefix*`, or `*`)."
            ),
        },
        "cookie": {
            "type": "apiKey",
            "in": "cookie",
            "name": "agentstream_token",
            "description": f"The same JWT in a cookie. {get_only}",
        },
        "query": {
            "type": "apiKey",
            "in": "query",
            "name": "access_token",
            "description": f"The same JWT as a query parameter; never logged. {get_only}",
        },
    }


def _paragraphs(text: str) -> str:
    """Paragraphs as single lines: renderers wrap them (the source wraps at 100 columns)."""
    return "\n\n".join(" ".join(part.split()) for part in text.strip().split("\n\n"))


def _version() -> str:
    try:
        return importlib.metadata.version("agentstream")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return "0"
