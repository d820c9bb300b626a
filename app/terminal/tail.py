"""`app tail SESSION`: print a session's events as they come, for as long as it runs.

Resumes by itself after every drop (the client keeps the last id). Ctrl-C ends it with 0.
"""

from __future__ import annotations

import asyncio
import re
import sys
from typing import TYPE_CHECKING, TextIO

from agentstream_client import APIError
from app.terminal import client_of, refusal
from app.terminal.render import Renderer, json_line, use_colour

if TYPE_CHECKING:
    import argparse

TOKEN = re.compile(r"^\d+\.[0-9a-f]{8}$")  # a resume token: <position>.<session tag>


def split_since(since: str | None) -> tuple[str | None, str | None]:
    """`--since` as (last_event_id, since_timestamp): a resume token or a time."""
    if since is None:
        return None, None
    if TOKEN.match(since):
        return since, None
    return None, since


async def follow(args: argparse.Namespace, out: TextIO, renderer: Renderer) -> int:
    last_event_id, since = split_since(args.since)
    async with (
        client_of(args) as client,
        client.stream(args.session, last_event_id=last_event_id, since=since) as events,
    ):
        async for event in events:
            if args.json:
                out.write(json_line(event) + "\n")
                out.flush()
            else:
                renderer.event(event)
    return 0


def main(args: argparse.Namespace, out: TextIO | None = None) -> int:
    stdout = out or sys.stdout
    renderer = Renderer(stdout, colour=use_colour(stdout))
    try:
        return asyncio.run(follow(args, stdout, renderer))
    except KeyboardInterrupt:
        renderer.end_line()
        return 0
    except APIError as exc:
        renderer.end_line()
        print(refusal(exc), file=sys.stderr)
        return 1
