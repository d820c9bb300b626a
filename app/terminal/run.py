"""`app run AGENT --session ID --input JSON`: start a run, print its text live, follow it to
its end. Exit status: 0 when the run succeeded; 1 when it failed, timed out or was cancelled
(the error on stderr); 2 when the arguments or the API refused it; 3 when the API is
unreachable; 130 on Ctrl-C (the run goes on; its id is printed).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import TYPE_CHECKING, Any, TextIO

from agentstream_client import HISTORY_LOST, RUN_ENDS, APIError, Event, Unreachable
from app.store.runs import run_event_id
from app.terminal import client_of, refusal
from app.terminal.render import Palette, use_colour

if TYPE_CHECKING:
    import argparse

    from agentstream_client import Client


class RunFollower:
    """Prints one run's message text to `out` and its progress to `err`."""

    def __init__(self, run_id: str, trace_id: str | None, out: TextIO, err: TextIO) -> None:
        self.run_id = run_id
        self.trace_id = trace_id
        self._out = out
        self._err = err
        self._paint = Palette(use_colour(err))
        self._streamed: set[str] = set()
        self._open = False

    def note(self, text: str, style: str = "dim") -> None:
        self._end_line()
        self._err.write(self._paint(style, text) + "\n")
        self._err.flush()

    def mine(self, event: Event) -> bool:
        if event.type.startswith("run."):
            return event.data.get("run_id") == self.run_id
        return event.control or (self.trace_id is not None and event.trace_id == self.trace_id)

    def event(self, event: Event) -> bool:
        """Show one event; True once the run has ended."""
        if not self.mine(event):
            return False
        if event.type == "message.delta":
            self._streamed.add(str(event.data.get("message_id")))
            self._out.write(str(event.data.get("delta", "")))
            self._out.flush()
            self._open = True
        elif event.type == "message.completed":
            if event.data.get("message_id") not in self._streamed:
                self._out.write(str(event.data.get("content", "")))
                self._open = True
            self._end_line()
        elif event.type == "run.started":
            self.note(f"run {self.run_id} started")
        elif event.type == HISTORY_LOST:
            self.note(f"warning: {event.data.get('message', 'history lost')}", "yellow")
        return event.type in RUN_ENDS

    def _end_line(self) -> None:
        if self._open:
            self._out.write("\n")
            self._out.flush()
            self._open = False


async def follow(args: argparse.Namespace, payload: dict[str, Any], out: TextIO) -> int:
    async with client_of(args) as client:
        started = await client.start_run(args.session, args.agent, payload)
        follower = RunFollower(started["run_id"], started.get("trace_id"), out, sys.stderr)
        follower.note(f"run {follower.run_id} queued: agent {args.agent}, session {args.session}")
        try:
            await _until_end(client, args.session, follower)
        except asyncio.CancelledError:
            follower.note(f"stopped following; run {follower.run_id} goes on", "yellow")
            raise
        record = await client.get_run(follower.run_id)
    status = record.get("status")
    if status == "succeeded":
        follower.note(f"run {follower.run_id} succeeded", "green")
        return 0
    error = record.get("error") or {}
    detail = f": {error.get('type')}: {error.get('message')}" if error else ""
    follower.note(f"error: run {follower.run_id} {status}{detail}", "red")
    return 1


async def _until_end(client: Client, session: str, follower: RunFollower) -> None:
    # The run's events all follow its run.queued event, which exists once the run is accepted.
    queued = await client.get_event(run_event_id(follower.run_id, "queued"))
    async with client.stream(session, last_event_id=queued["id"]) as events:
        async for event in events:
            if follower.event(event):
                return


def parse_input(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--input is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError("--input must be a JSON object")
    return value


def main(args: argparse.Namespace, out: TextIO | None = None) -> int:
    try:
        payload = parse_input(args.input)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(follow(args, payload, out or sys.stdout))
    except KeyboardInterrupt:
        return 130
    except APIError as exc:
        print(refusal(exc), file=sys.stderr)
        return 2
    except Unreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
