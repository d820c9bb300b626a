"""Our API in a server process of its own, for the benchmarks.

`python -m bench.serve_ours --feed synthetic --rate R --expect N --run-for S`

It is `build_server(create_app(settings))`, the same as `app serve`, on uvloop and a free port
of 127.0.0.1, with two additions: PyMongo command monitoring, and `GET /bench-stats` (commands
started, events generated, subscribers). With `--feed synthetic` the in-process feed of
bench/synthetic.py replaces the change stream; otherwise SSE_FEED picks the feed as usual.
Prints `{"port": ..., "pid": ...}` when it serves, and exits by itself after `--max-lifetime`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
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
    task = asyncio.create_task(server.serve())
    ready = asyncio.create_task(server.ready.wait())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        ready.cancel()
        await task
        raise RuntimeError("uvicorn did not start")
    print(orjson.dumps({"port": server.port, "pid": os.getpid()}).decode(), flush=True)
    try:
        async with asyncio.timeout(args.max_lifetime):
            await asyncio.shield(task)
    except TimeoutError:
        logger.warning("max lifetime reached; stopping")
        server.should_exit = True
        await task


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
    # uvloop, as uvicorn's loop="auto" picks for `app serve`.
    asyncio.run(serve(args, settings), loop_factory=uvloop.new_event_loop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
