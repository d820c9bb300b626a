"""Server-Sent Events parsing, as the WHATWG HTML standard defines it for `EventSource`.

Lines end in CR LF, LF or CR (the caller splits them); a blank line dispatches the event; a
line starting with `:` is a comment; `field: value` loses one space after the colon; `data`
lines join with LF; an `id` holding NUL is ignored; `retry` counts only when all digits. An
event with no `data` is not dispatched, but its `id` still moves the last event id.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, slots=True)
class ServerSentEvent:
    event: str
    data: str
    id: str | None  # the `id` this event carried itself; None when it had no `id` line
    last_event_id: str  # the stream's last event id once this event is dispatched


class SSEDecoder:
    """Feed it lines (without their line ending); it returns an event at each blank line."""

    def __init__(self) -> None:
        self.last_event_id = ""
        self.retry: int | None = None  # milliseconds, from the last valid `retry:` line
        self.comments = 0
        self._first = True
        self._reset()

    def _reset(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None

    def decode(self, line: str) -> ServerSentEvent | None:
        if self._first:
            self._first = False
            line = line.removeprefix("\ufeff")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            self.comments += 1
            return None
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "event":
            self._event = value
        elif field == "data":
            self._data.append(value)
        elif field == "id":
            if "\0" not in value:
                self._id = value
                self.last_event_id = value
        elif field == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        found = None
        if self._data:
            found = ServerSentEvent(
                event=self._event or "message",
                data="\n".join(self._data),
                id=self._id,
                last_event_id=self.last_event_id,
            )
        self._reset()
        return found
