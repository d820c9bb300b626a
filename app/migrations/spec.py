"""Every index and TTL the service needs, each with the query that uses it."""

from __future__ import annotations

import dataclasses

from app.settings import Settings

DAY = 86_400
SCHEMA_VERSION = 2


@dataclasses.dataclass(frozen=True, slots=True)
class IndexSpec:
    collection: str
    name: str
    keys: tuple[tuple[str, int], ...]
    unique: bool = False
    ttl_seconds: int | None = None
    purpose: str = ""


def index_specs(settings: Settings) -> tuple[IndexSpec, ...]:
    events_ttl = settings.event_retention_days * DAY
    messages_ttl = settings.message_retention_days * DAY
    return (
        IndexSpec(
            "events",
            "session_seq",
            (("session_id", 1), ("seq", 1)),
            unique=True,
            purpose="replay, catch-up and polling by per-session position; one writer per position",
        ),
        IndexSpec(
            "events",
            "session_timestamp",
            (("session_id", 1), ("timestamp", 1)),
            purpose="since_timestamp: find the first position at or after a time",
        ),
        IndexSpec(
            "events", "event_id", (("event_id", 1),), unique=True, purpose="GET /v1/events/{id}"
        ),
        IndexSpec("events", "trace_id", (("trace_id", 1),), purpose="GET /v1/traces/{id}/events"),
        IndexSpec(
            "events",
            "timestamp_ttl",
            (("timestamp", 1),),
            ttl_seconds=events_ttl,
            purpose="EVENT_RETENTION_DAYS",
        ),
        IndexSpec(
            "messages",
            "session_timestamp",
            (("session_id", 1), ("timestamp", 1)),
            purpose="GET /v1/sessions/{id}/messages",
        ),
        IndexSpec(
            "messages",
            "message_id",
            (("message_id", 1),),
            unique=True,
            purpose="one message per id",
        ),
        IndexSpec("messages", "parent_id", (("parent_id", 1),), purpose="message trees"),
        IndexSpec("messages", "trace_id", (("trace_id", 1),), purpose="messages of a trace"),
        IndexSpec(
            "messages",
            "timestamp_ttl",
            (("timestamp", 1),),
            ttl_seconds=messages_ttl,
            purpose="MESSAGE_RETENTION_DAYS",
        ),
        IndexSpec("runs", "run_id", (("run_id", 1),), unique=True, purpose="GET /v1/runs/{id}"),
        IndexSpec(
            "runs",
            "session_created",
            (("session_id", 1), ("created_at", 1)),
            purpose="runs of a session",
        ),
        IndexSpec(
            "runs",
            "status_created",
            (("status", 1), ("created_at", 1)),
            purpose="the worker's reconciler: queued and running runs, oldest first",
        ),
        IndexSpec(
            "runs",
            "created_ttl",
            (("created_at", 1),),
            ttl_seconds=messages_ttl,
            purpose="run records live as long as messages (MESSAGE_RETENTION_DAYS)",
        ),
        IndexSpec(
            "sessions",
            "updated_ttl",
            (("updated_at", 1),),
            ttl_seconds=events_ttl + DAY,
            purpose="a session's position counter outlives its last event by one day",
        ),
        IndexSpec(
            "sessions",
            "recent",
            (("updated_at", -1), ("_id", -1)),
            purpose="GET /v1/sessions: covered sessions, newest write first, by cursor",
        ),
    )
