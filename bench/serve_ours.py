"""Our API in a server process of its own, for the benchmarks.

`python -m bench.serve_ours --feed synthetic --rate R --expect N --run-for S`

It is `build_server(create_app(settings))`, the same as `app serve`, on uvloop and a free port
of 127.0.0.1, with two additions: PyMongo command monitoring, and `GET /bench-stats` (commands
started, events generated, subscribers). With `--feed synthetic` the in-process feed of
bench/synthetic.py replaces the change stream; otherwise SSE_FEED picks the feed as usual.
Prints `{"port": ..., "pid": ...}` when it serves, and exits by itself after `--max-lifetime`.

`--workers N` runs it as `app serve --workers N` does: app/supervisor.py binds the port and
keeps N children of this module on it, each with its own synthetic feed (as each API process
reads the whole change stream), generating for the sessions its own clients watch.
`--no-direct` serves with uvicorn's plain httptools protocol, so every frame goes through
ASGI send: the delivery path as it was before the hub's direct writes (the baseline).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import socket
import sys

import orjson
import uvloop
from starlette.requests import Request
from starlette.responses import Response

from app.application import create_app
from app.auth.policy import Access, Scope, SessionRule
from app.auth.routes import ProtectedRoute
from app.feeds.base import Feed, Publisher
from app.logs import configure_logging
from app.server import build_server
from app.settings import FeedMode, Settings
from app.supervisor import Supervisor, bind, die_with_parent
from bench.mongocount import CommandCounter
from bench.procs import raise_nofile
from bench.synthetic import SyntheticFeed

logger = logging.getLogger(__name__)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.serve_ours", description=__doc__)
    parser.add_argument("--feed", choices=["synthetic", *FeedMode], default="synthetic")
    parser.add_argument("--rate", type=float, default=0.0, help="synthetic events/s")
    parser.add_argument("--expect", type=int, default=0, help="subscribers before generating")
    parser.add_argument("--run-for", type=float, default=60.0, help="seconds of generating")
    parser.add_argument("--max-lifetime", type=float, default=900.0)
    parser.add_argument("--workers", type=int, default=1, help="API processes on the port")
    parser.add_argument("--no-direct", action="store_true", help="every frame via ASGI send")
    parser.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace, settings: Settings) -> None:
    counter = CommandCounter()
    feeds: list[SyntheticFeed] = []

    def synthetic(publisher: Publisher) -> Feed:
        feed = SyntheticFeed(publisher, rate=args.rate, expect=args.expect, run_for=args.run_for)
        feeds.append(feed)
        return feed

    app = create_app(
        settings,
        mongo_listeners=[counter],
        feed_factory=synthetic if args.feed == "synthetic" else None,
    )

    async def stats(request: Request) -> Response:
        hub = request.app.state.services.hub
        body = {
            **counter.stats(),
            "generated": sum(feed.generated for feed in feeds),
            "published": hub.published,
            "subscribers": hub.subscribers,
            "feed": request.app.state.services.feed.mode,
            "tasks": len(asyncio.all_tasks()),
        }
        return Response(orjson.dumps(body), media_type="application/json")

    # Behind access control like every route: AUTH_MODE=off (bench.procs) grants it.
    admin = Access(Scope.ADMIN, SessionRule.NONE)
    app.router.routes.append(ProtectedRoute("/bench-stats", stats, methods=["GET"], access=admin))
    server = build_server(app, settings, port=0)
    if args.no_direct:
        server.config.http = "httptools"  # uvicorn's own protocol: no direct writer offered
    sockets = None
    if args.listen_fd is not None:
        die_with_parent()
        sockets = [socket.socket(fileno=args.listen_fd)]
    task = asyncio.create_task(server.serve(sockets))
    ready = asyncio.create_task(server.ready.wait())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        ready.cancel()
        await task
        raise RuntimeError("uvicorn did not start")
    if sockets is None:
        print(orjson.dumps({"port": server.port, "pid": os.getpid()}).decode(), flush=True)
    try:
        async with asyncio.timeout(args.max_lifetime):
            await asyncio.shield(task)
    except TimeoutError:
        logger.warning("max lifetime reached; stopping")
        server.should_exit = True
        await task


def supervise(args: argparse.Namespace, argv: list[str]) -> int:
    """The parent of `--workers N`: bind, say the port, keep N children serving on it."""
    sock = bind("127.0.0.1", 0)
    print(orjson.dumps({"port": sock.getsockname()[1], "pid": os.getpid()}).decode(), flush=True)
    # A child cannot know how many clients it will get: it starts once its count holds still.
    command = [sys.executable, "-m", "bench.serve_ours", *argv, "--workers", "1", "--expect", "-1"]
    return Supervisor(sock, args.workers, command, grace=5.0).run()


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    settings = Settings.from_env()
    settings = dataclasses.replace(
        settings,
        host="127.0.0.1",
        port=0,
        sse_feed=FeedMode(args.feed) if args.feed != "synthetic" else settings.sse_feed,
    )
    configure_logging(settings)
    raise_nofile()
    if args.workers > 1 and args.listen_fd is None:
        return supervise(args, argv if argv is not None else sys.argv[1:])
    # uvloop, as uvicorn's loop="auto" picks for `app serve`.
    asyncio.run(serve(args, settings), loop_factory=uvloop.new_event_loop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
