"""How the terminal shows events: assembled text, interleaved messages, colour only on a TTY."""

from __future__ import annotations

import io
from typing import Any

from agentstream_client import Event
from app.terminal.render import Renderer, clock, compact, use_colour


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def event(type: str, data: dict[str, Any], ts: str = "2026-11-30T04:16:23.644Z") -> Event:
    return Event(type=type, data=data, id="1.00000000", timestamp=ts)


def delta(message_id: str, text: str) -> Event:
    return event("message.delta", {"message_id": message_id, "delta": text})


def test_colour_only_on_a_terminal_and_never_with_no_color() -> None:
    assert use_colour(TTY(), {}) is True
    assert use_colour(TTY(), {"NO_COLOR": "1"}) is False
    assert use_colour(io.StringIO(), {}) is False
    out = TTY()
    Renderer(out, colour=True).event(event("run.failed", {"run_id": "r", "status": "failed"}))
    assert "\x1b[31mrun.failed\x1b[0m" in out.getvalue()


def test_interleaved_messages_each_get_their_text_and_a_whole_message_is_shown() -> None:
    out = io.StringIO()
    show = Renderer(out, colour=False)
    for item in (delta("a", "one "), delta("b", "two "), delta("a", "three")):
        show.event(item)
    show.event(event("message.completed", {"message_id": "a", "content": "one three"}))
    show.event(event("message.completed", {"message_id": "b", "content": "two "}))
    show.event(event("message.completed", {"message_id": "c", "role": "user", "content": "whole"}))
    show.event(
        event(
            "run.failed",
            {"run_id": "r", "status": "failed", "error": {"type": "E", "message": "bad"}},
        )
    )
    lines = out.getvalue().splitlines()
    assert lines == [
        "04:16:23.644 a ▸ one ",
        "04:16:23.644 b ▸ two ",
        "04:16:23.644 a (continued) ▸ three ✓",
        "04:16:23.644 message.completed b complete",
        "04:16:23.644 user (c): whole",
        "04:16:23.644 run.failed run r error: E: bad",
    ]


def test_times_and_data_are_kept_short() -> None:
    assert clock("2026-11-30T04:16:23.644Z") == "04:16:23.644"
    assert clock(None) == " " * 12
    assert compact({"k": "x" * 500}).endswith("…")
    assert len(compact({"k": "x" * 500})) == 160
    lost = Event(type="stream.history_lost", data={"message": "gone", "reason": "expired"})
    out = io.StringIO()
    Renderer(out, colour=False).event(lost)
    assert "stream.history_lost gone" in out.getvalue()
    assert lost.to_json() == {"type": "stream.history_lost", "data": lost.data}
