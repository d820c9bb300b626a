"""Stored documents to the JSON the API and the stream send, serialised once with orjson."""

from __future__ import annotations

from typing import Any

import orjson

from app.store import tokens
from app.validation import format_timestamp

type Document = dict[str, Any]


def event_view(doc: Document) -> dict[str, Any]:
    session_id = doc["session_id"]
    return {
        "id": tokens.encode(session_id, doc["seq"]),
        "event_id": doc["event_id"],
        "session_id": session_id,
        "type": doc["type"],
        "data": doc["data"],
        "trace_id": doc.get("trace_id"),
        "timestamp": format_timestamp(doc["timestamp"]),
    }


def event_json(doc: Document) -> bytes:
    return orjson.dumps(event_view(doc))


def message_view(doc: Document) -> dict[str, Any]:
    view = {
        "message_id": doc["message_id"],
        "session_id": doc["session_id"],
        "parent_id": doc.get("parent_id"),
        "role": doc["role"],
        "content": doc["content"],
        "trace_id": doc.get("trace_id"),
        "timestamp": format_timestamp(doc["timestamp"]),
    }
    if doc.get("incomplete"):  # a message cut short by its run's end: why
        view.update(incomplete=True, reason=doc["incomplete"])
    return view
