"""The client's SSE parser, against the WHATWG rules and the frames this API sends."""

from __future__ import annotations

from agentstream_client.sse import ServerSentEvent, SSEDecoder


def decode(text: str) -> tuple[list[ServerSentEvent], SSEDecoder]:
    decoder = SSEDecoder()
    found = [e for line in text.splitlines() if (e := decoder.decode(line)) is not None]
    return found, decoder


def test_a_stored_event_then_a_control_event_that_keeps_the_last_id() -> None:
    events, decoder = decode(
        "retry: 2000\n\n"
        'id: 1.1f3a9c0b\nevent: tool.call\ndata: {"id":"1.1f3a9c0b"}\n\n'
        ": keep-alive\n\n"
        'event: stream.reconnect\ndata: {"reason":"timeout"}\n\n'
    )
    assert events == [
        ServerSentEvent("tool.call", '{"id":"1.1f3a9c0b"}', "1.1f3a9c0b", "1.1f3a9c0b"),
        ServerSentEvent("stream.reconnect", '{"reason":"timeout"}', None, "1.1f3a9c0b"),
    ]
    assert (decoder.retry, decoder.comments) == (2000, 1)


def test_field_rules_data_lines_spaces_and_defaults() -> None:
    events, _ = decode("\ufeffdata:a\ndata:  b\ndata\n\nevent\ndata: x\n\n")
    assert [(e.event, e.data) for e in events] == [("message", "a\n b\n"), ("message", "x")]


def test_invalid_retry_and_ids_with_nul_are_ignored_and_empty_events_not_dispatched() -> None:
    events, decoder = decode("retry: 12a\nid: 5\n\nid: bad\0id\ndata: y\n\nretry: 300\n\n")
    assert [(e.data, e.id, e.last_event_id) for e in events] == [("y", None, "5")]
    assert decoder.retry == 300  # the invalid value was skipped; the next valid one counts


def test_an_unknown_field_is_ignored() -> None:
    events, _ = decode("foo: bar\ndata: z\n\n")
    assert [e.data for e in events] == ["z"]
