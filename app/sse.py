"""Server-Sent Events framing. Events are framed once and the bytes shared by every subscriber."""

from __future__ import annotations

import orjson

from app.store.codec import Document, event_view

HEARTBEAT = b": keep-alive\n\n"


def event_frame(doc: Document) -> bytes:
    """`id`, `event` and `data` lines for one stored event (orjson never emits a newline)."""
    view = event_view(doc)
    return b"".join(
        (
            b"id: ",
            view["id"].encode(),
            b"\nevent: ",
            view["type"].encode(),
            b"\ndata: ",
            orjson.dumps(view),
            b"\n\n",
        )
    )


def control_frame(event: str, data: dict[str, object]) -> bytes:
    """A stream-control event. It carries no `id`, so the client's last event id stays put."""
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def retry_frame(milliseconds: int) -> bytes:
    return f"retry: {milliseconds}\n\n".encode()
