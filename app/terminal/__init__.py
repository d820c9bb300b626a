"""`app tail` and `app run`: the terminal client, built on `agentstream_client` alone.

Neither needs the server's settings (MONGO_URL, REDIS_URL, ...): they only talk HTTP to
`--url` (default AGENTSTREAM_URL, else http://127.0.0.1:8000) with `--token` (default
AGENTSTREAM_TOKEN).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from typing import Any

from agentstream_client import DEFAULT_URL, TOKEN_VARIABLE, URL_VARIABLE, APIError, Client

COMMANDS = frozenset({"tail", "run"})


def add_commands(commands: Any) -> None:
    """Add `tail` and `run` to the `app` parser's subcommands."""
    tail = commands.add_parser("tail", help="follow a session live, resuming after drops")
    tail.add_argument("session", help="the session id")
    tail.add_argument(
        "--since",
        help="start after this resume token, or at this time (ISO 8601 or epoch milliseconds);"
        " default: the start of the retained history",
    )
    tail.add_argument("--json", action="store_true", help="print one event JSON a line")
    _connection(tail)
    run = commands.add_parser("run", help="start an agent run and follow it to its end")
    run.add_argument("agent", help="the agent's name (GET /v1/agents lists them)")
    run.add_argument("--session", required=True, help="the session the run writes to")
    run.add_argument("--input", default="{}", help="the run's input, a JSON object")
    _connection(run)


def _connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", help=f"the API's base URL (default: {URL_VARIABLE}, else {DEFAULT_URL})"
    )
    parser.add_argument("--token", help=f"a bearer token (default: {TOKEN_VARIABLE})")


def client_of(args: argparse.Namespace) -> Client:
    url = args.url or os.environ.get(URL_VARIABLE) or DEFAULT_URL
    token = args.token or os.environ.get(TOKEN_VARIABLE) or None
    return Client(url, token=token)


def refusal(exc: APIError) -> str:
    """The error line for an API refusal; 401 and 403 say what to do about the token."""
    line = f"error: {exc}"
    if exc.status == 401:
        return (
            f"{line}\n(the API needs a valid token: pass --token or set {TOKEN_VARIABLE};"
            " `app token` mints one)"
        )
    if exc.status == 403:
        return f"{line}\n(the token is valid but does not grant this: see its scope and sessions)"
    return line


def main(args: argparse.Namespace) -> int:
    """Run `tail` or `run`; returns the exit status."""
    from app.terminal import run, tail

    _log_to_stderr()
    try:
        if args.command == "tail":
            return tail.main(args)
        return run.main(args)
    except BrokenPipeError:
        # The reader went away (`app tail s | head`): stop quietly, without a traceback.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _log_to_stderr() -> None:
    """The client's own notes (reconnects) go to stderr; output stays on stdout."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger = logging.getLogger("agentstream_client")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.WARNING)
    logger.propagate = False
