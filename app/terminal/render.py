"""How `app tail` and `app run` print a session: readable lines, message text assembled.

`message.delta` text is written as it arrives, after one header per message; the line ends
when its `message.completed` arrives (or another event needs a line). Colour only on a
terminal, and never when NO_COLOR is set (https://no-color.org).
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from agentstream_client import Event

_CODES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}
_RUN_COLOURS = {
    "run.queued": "cyan",
    "run.started": "cyan",
    "run.completed": "green",
    "run.failed": "red",
    "run.timed_out": "red",
    "run.cancelled": "yellow",
    "stream.history_lost": "yellow",
}
SUMMARY_CHARS = 160


def use_colour(out: TextIO, environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return out.isatty() and not env.get("NO_COLOR")


class Palette:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, style: str, text: str) -> str:
        if not self.enabled or style not in _CODES:
            return text
        return f"\033[{_CODES[style]}m{text}\033[0m"


def clock(timestamp: str | None) -> str:
    """`2026-11-30T04:16:23.644Z` -> `04:16:23.644`."""
    if not timestamp or "T" not in timestamp:
        return " " * 12
    return timestamp.partition("T")[2].removesuffix("Z")[:12].ljust(12)


def compact(data: Any, limit: int = SUMMARY_CHARS) -> str:
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Renderer:
    """Writes each event of a session to `out` as it comes."""

    def __init__(self, out: TextIO, *, colour: bool) -> None:
        self._out = out
        self._paint = Palette(colour)
        self._open: str | None = None  # the message whose text the current line is showing
        self._streamed: set[str] = set()  # messages that had deltas

    def event(self, event: Event) -> None:
        if event.type == "message.delta":
            self._delta(event)
        elif event.type == "message.completed":
            self._completed(event)
        else:
            self.end_line()
            self._line(event, self._summary(event))
        self._out.flush()

    def end_line(self) -> None:
        if self._open is not None:
            self._out.write("\n")
            self._open = None

    def _delta(self, event: Event) -> None:
        message_id = str(event.data.get("message_id", ""))
        if self._open != message_id:
            self.end_line()
            again = " (continued)" if message_id in self._streamed else ""
            header = self._paint("dim", f"{clock(event.timestamp)} ") + self._paint(
                "bold", f"{message_id}{again} ▸ "
            )
            self._out.write(header)
            self._open = message_id
            self._streamed.add(message_id)
        self._out.write(str(event.data.get("delta", "")))

    def _completed(self, event: Event) -> None:
        message_id = str(event.data.get("message_id", ""))
        if message_id in self._streamed:
            if self._open == message_id:
                self._out.write(self._paint("green", " ✓") + "\n")
                self._open = None
            else:
                self.end_line()
                self._line(event, f"{message_id} complete")
            self._streamed.discard(message_id)
            return
        self.end_line()
        role = event.data.get("role", "message")
        header = self._paint("bold", f"{role} ({message_id}):")
        self._out.write(f"{self._paint('dim', clock(event.timestamp))} {header} ")
        self._out.write(f"{event.data.get('content', '')}\n")

    def _summary(self, event: Event) -> str:
        data = dict(event.data)
        if event.type.startswith("run."):
            parts = [f"run {data.pop('run_id', '?')}"]
            error = data.pop("error", None)
            data.pop("status", None)
            parts += [f"{k}={v}" for k, v in data.items()]
            if isinstance(error, dict):
                parts.append(f"error: {error.get('type', '')}: {error.get('message', '')}")
            return " ".join(parts)
        if event.type == "stream.history_lost":
            return str(data.get("message") or "history lost") + f" ({compact(data)})"
        return compact(data)

    def _line(self, event: Event, text: str) -> None:
        style = _RUN_COLOURS.get(event.type, "cyan" if event.type.startswith("run.") else "")
        kind = self._paint(style or "bold", event.type)
        self._out.write(f"{self._paint('dim', clock(event.timestamp))} {kind} {text}\n")


def json_line(event: Event) -> str:
    return json.dumps(event.to_json(), ensure_ascii=False, separators=(",", ":"))
