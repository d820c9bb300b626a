"""JSON Schemas (2020-12, as OpenAPI 3.1 uses) of every request and response body.

Every pattern, length and limit is imported from the module that enforces it, so the document
cannot say something the validators do not: a request the document calls invalid is one the
service rejects. Response schemas describe what the views in `app/store` produce.
"""

from __future__ import annotations

from typing import Any

from app.jobs import RUN_ID_MAX
from app.store.events import MAX_BATCH, RESERVED_TYPE_PREFIXES
from app.store.runs import RunStatus
from app.store.tokens import TOKEN_PATTERN
from app.stream import HISTORY_LOST, RECONNECT
from app.validation import ID_MAX, ID_PATTERN, MAX_DEPTH, TYPE_MAX, TYPE_PATTERN

type Schema = dict[str, Any]


RECONNECT_REASONS = ("timeout", "slow_consumer", "shutdown", "unavailable", "token_expired")
TIMESTAMP_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$"


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"oneOf": [schema, {"type": "null"}]}


def identifier(what: str, max_length: int = ID_MAX) -> Schema:
    schema: Schema = {
        "type": "string",
        "pattern": ID_PATTERN,
        "minLength": 1,
        "maxLength": max_length,
        "description": f"{what}: 1-{max_length} characters from [A-Za-z0-9._:-].",
    }
    return schema


def token(description: str, *, empty: bool = False) -> Schema:
    pattern = TOKEN_PATTERN if not empty else f"^({TOKEN_PATTERN[1:-1]})?$"
    return {
        "type": "string",
        "pattern": pattern,
        "description": description,
        "examples": ["42.1f3a9c0b"],
    }


def _timestamp(description: str = "ISO 8601 in UTC, milliseconds, trailing Z.") -> Schema:
    return {
        "type": "string",
        "format": "date-time",
        "pattern": TIMESTAMP_PATTERN,
        "description": description,
    }


_JSON_OBJECT: Schema = {
    "type": "object",
    "propertyNames": {"not": {"pattern": "^\\$|\\u0000"}},
    "description": (
        "A JSON object. No key, at any depth, starts with '$' or holds NUL; "
        f"nesting is at most {MAX_DEPTH} levels."
    ),
}


def _new_event() -> Schema:
    return {
        "type": "object",
        "required": ["type"],
        "additionalProperties": False,
        "properties": {
            "type": {
                "type": "string",
                "pattern": TYPE_PATTERN,
                "minLength": 1,
                "maxLength": TYPE_MAX,
                "description": (
                    f"1-{TYPE_MAX} characters from [A-Za-z0-9._:-]. Types starting with "
                    f"{' or '.join(repr(p) for p in RESERVED_TYPE_PREFIXES)} belong to the "
                    "service: 400 reserved_type."
                ),
                "examples": ["tool.call"],
            },
            "data": {**_JSON_OBJECT, "default": {}},
            "trace_id": nullable(identifier("The trace this event belongs to")),
            "event_id": nullable(
                identifier("Your id for the event; a retry with the same id is not stored twice")
            ),
        },
    }


def _event() -> Schema:
    return {
        "type": "object",
        "required": ["id", "event_id", "session_id", "type", "data", "trace_id", "timestamp"],
        "properties": {
            "id": token("The event's resume token: `<position>.<8 hex session tag>`."),
            "event_id": {"type": "string", "minLength": 1},
            "session_id": identifier("Session id"),
            "type": {"type": "string", "minLength": 1},
            "data": {"type": "object"},
            "trace_id": {"type": ["string", "null"]},
            "timestamp": _timestamp("When the event was stored: " + "ISO 8601, UTC, ms, Z."),
        },
    }


def _run() -> Schema:
    maybe_time = {"oneOf": [_timestamp(), {"type": "null"}]}
    return {
        "type": "object",
        "required": [
            "run_id",
            "session_id",
            "agent",
            "status",
            "trace_id",
            "created_at",
            "started_at",
            "ended_at",
            "error",
        ],
        "properties": {
            "run_id": {"type": "string", "minLength": 1},
            "session_id": {"type": "string", "minLength": 1},
            "agent": {"type": "string"},
            "status": {"type": "string", "enum": [status.value for status in RunStatus]},
            "trace_id": {"type": ["string", "null"]},
            "created_at": maybe_time,
            "started_at": maybe_time,
            "ended_at": maybe_time,
            "error": nullable(
                {
                    "type": "object",
                    "required": ["type", "message"],
                    "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
                    "description": "The exception's class name and message; never a traceback.",
                }
            ),
        },
    }


def _stream_event() -> Schema:
    """One Server-Sent Event as a client parses it: `event`, `data`, and `id` when stored."""

    def data(schema: str) -> Schema:
        return {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": ref(schema),
        }

    return {
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": {"type": "string", "minLength": 1},
            "data": {"type": "string"},
            "id": {"type": "string"},
            "retry": {"type": "integer", "minimum": 0},
        },
        "oneOf": [
            {
                "description": "A stored event: `id` is its resume token, `event` its type.",
                "properties": {
                    "event": {"not": {"enum": [HISTORY_LOST, RECONNECT]}},
                    "id": {"pattern": TOKEN_PATTERN},
                    "data": data("Event"),
                },
                "required": ["id"],
            },
            {
                "description": "The position asked for cannot be resumed exactly.",
                "properties": {"event": {"const": HISTORY_LOST}, "data": data("HistoryLost")},
            },
            {
                "description": "The last frame before the server closes; reconnect from it.",
                "properties": {"event": {"const": RECONNECT}, "data": data("Reconnect")},
            },
        ],
    }


def components() -> dict[str, Schema]:
    """The named schemas of the document (`#/components/schemas/...`)."""
    message_fields = ["message_id", "session_id", "parent_id", "role", "content", "trace_id"]
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                    },
                }
            },
        },
        "NewEvent": _new_event(),
        "NewEventBatch": {
            "type": "object",
            "required": ["events"],
            "additionalProperties": False,
            "properties": {
                "events": {
                    "type": "array",
                    "items": ref("NewEvent"),
                    "minItems": 1,
                    "maxItems": MAX_BATCH,
                    "description": "Stored in this order; event_ids must differ.",
                }
            },
        },
        "Appended": {
            "type": "object",
            "required": ["events"],
            "properties": {
                "events": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["event_id", "id", "timestamp"],
                        "properties": {
                            "event_id": {"type": "string", "minLength": 1},
                            "id": token("The event's resume token."),
                            "timestamp": _timestamp(),
                        },
                    },
                }
            },
        },
        "Event": _event(),
        "EventPage": {
            "type": "object",
            "required": ["events", "next"],
            "properties": {
                "events": {"type": "array", "items": ref("Event")},
                "next": {"oneOf": [token("Pass as `after` for the next page."), {"type": "null"}]},
            },
        },
        "TraceEvents": {
            "type": "object",
            "required": ["events"],
            "properties": {
                "events": {"type": "array", "items": ref("Event")},
                "next": {
                    "type": ["string", "null"],
                    "description": "Pass as `after` for the next page; null on the last.",
                },
            },
        },
        "StreamEvent": _stream_event(),
        "HistoryLost": {
            "type": "object",
            "required": ["reason", "requested", "resumed_after", "message"],
            "properties": {
                "reason": {
                    "type": "string",
                    "enum": ["expired", "ahead"],
                    "description": "expired: older than retained history, the stream goes on"
                    " from the oldest retained event; ahead: beyond the session's last event,"
                    " the stream goes on live from its end.",
                },
                "requested": {"type": "string"},
                "resumed_after": {
                    "oneOf": [token("Where the stream goes on from."), {"type": "null"}]
                },
                "message": {"type": "string"},
            },
        },
        "Reconnect": {
            "type": "object",
            "required": ["reason", "last_event_id"],
            "properties": {
                "reason": {"type": "string", "enum": list(RECONNECT_REASONS)},
                "last_event_id": {"oneOf": [token("Reconnect with this."), {"type": "null"}]},
            },
        },
        "Message": {
            "type": "object",
            "required": [*message_fields, "timestamp"],
            "properties": {
                "message_id": {"type": "string", "minLength": 1},
                "session_id": {"type": "string", "minLength": 1},
                "parent_id": {"type": ["string", "null"], "description": "Null for a root."},
                "role": {"type": "string"},
                "content": {"type": "string"},
                "trace_id": {"type": ["string", "null"]},
                "timestamp": _timestamp(),
            },
        },
        "Messages": {
            "type": "object",
            "required": ["messages"],
            "properties": {"messages": {"type": "array", "items": ref("Message")}},
        },
        "StartRun": {
            "type": "object",
            "required": ["agent", "input"],
            "additionalProperties": False,
            "properties": {
                "agent": {"type": "string", "description": "A configured agent: GET /v1/agents."},
                "input": {**_JSON_OBJECT, "description": "What the agent takes."},
                "trace_id": nullable(identifier("The run's trace; a new one when absent")),
                "run_id": nullable(
                    identifier("Your id for the run; posting it again returns it", RUN_ID_MAX)
                ),
            },
        },
        "RunStarted": {
            "type": "object",
            "required": ["run_id", "trace_id"],
            "properties": {"run_id": {"type": "string"}, "trace_id": {"type": ["string", "null"]}},
        },
        "Run": _run(),
        "Sessions": {
            "type": "object",
            "required": ["sessions", "next"],
            "properties": {
                "sessions": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["session_id", "updated_at", "last_event_id"],
                        "properties": {
                            "session_id": {"type": "string"},
                            "updated_at": _timestamp(),
                            "last_event_id": {"type": ["string", "null"]},
                        },
                    },
                },
                "next": {"type": ["string", "null"], "description": "Pass as `before`."},
            },
        },
        "Agents": {
            "type": "object",
            "required": ["agents"],
            "properties": {
                "agents": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "description"],
                        "properties": {
                            "name": {"type": "string"},
                            "description": {"type": "string"},
                        },
                    },
                }
            },
        },
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"const": "ok"}},
        },
        "Ready": {
            "type": "object",
            "required": ["status", "checks"],
            "properties": {
                "status": {"type": "string", "enum": ["ready", "unavailable"]},
                "checks": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "required": ["ok"],
                        "properties": {"ok": {"type": "boolean"}, "error": {"type": "string"}},
                    },
                },
            },
        },
    }
