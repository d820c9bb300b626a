"""One event of a session's stream, as the client yields it."""

from __future__ import annotations

import dataclasses
from typing import Any

HISTORY_LOST = "stream.history_lost"
RECONNECT = "stream.reconnect"
RUN_ENDS = frozenset({"run.completed", "run.failed", "run.cancelled", "run.timed_out"})


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """A stored event, or one of the stream's own control events (`stream.*`, with no `id`).

    `raw` is the JSON the server sent: the whole event (`id`, `event_id`, `session_id`, `type`,
    `data`, `trace_id`, `timestamp`), or a control event's data.
    """

    type: str
    data: dict[str, Any]
    id: str | None = None  # the resume token; None for control events
    event_id: str | None = None
    session_id: str | None = None
    trace_id: str | None = None
    timestamp: str | None = None
    raw: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def control(self) -> bool:
        return self.id is None and self.type.startswith("stream.")

    @classmethod
    def from_sse(cls, kind: str, body: Any, token: str | None) -> Event:
        if not isinstance(body, dict):
            body = {"value": body}
        if token is None:  # a control event: its data is the body itself
            return cls(type=kind, data=body, raw=body)
        data = body.get("data")
        return cls(
            type=str(body.get("type", kind)),
            data=data if isinstance(data, dict) else {},
            id=token,
            event_id=body.get("event_id"),
            session_id=body.get("session_id"),
            trace_id=body.get("trace_id"),
            timestamp=body.get("timestamp"),
            raw=body,
        )

    def to_json(self) -> dict[str, Any]:
        """The event as one JSON object: the server's event, or `{"type", "data"}` for control."""
        return self.raw if not self.control else {"type": self.type, "data": self.data}
