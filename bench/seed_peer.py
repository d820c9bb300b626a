"""The seed's design, as the peer to measure against: every SSE connection polls MongoDB.

`python -m bench.seed_peer [--interval 0.5] [--batch 100]` (MONGO_URL, MONGO_DB from the
environment). A minimal Starlette + sse-starlette app, as performance-optimization-guide.md
describes it: each connection runs its own loop that queries
`find({session_id, timestamp > last}).sort(timestamp).limit(100)` every 500 ms and sends what
it finds. Events are framed with the same JSON as ours, so the comparison is of the design,
not of the JSON library. `GET /bench-stats` reports the commands its client started.
Prints `{"port": ..., "pid": ...}` when it serves; exits by itself after `--max-lifetime`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import logging
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import orjson
import uvicorn
import uvloop
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.mongo import connect
from app.store.codec import event_json
from bench.mongocount import CommandCounter
from bench.procs import raise_nofile

logger = logging.getLogger(__name__)


def build_app(mongo_url: str, db: str, *, interval: float, batch: int) -> Starlette:
    counter = CommandCounter()
    state: dict[str, Any] = {"streams": 0}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        client = connect(mongo_url, event_listeners=[counter], maxPoolSize=200)
        state["events"] = client[db]["events"]
        try:
            yield
        finally:
            await client.close()

    async def poll(session_id: str) -> AsyncIterator[dict[str, str]]:
        events = state["events"]
        last = datetime.datetime.now(datetime.UTC)
        state["streams"] += 1
        try:
            while True:
                cursor = (
                    events.find({"session_id": session_id, "timestamp": {"$gt": last}}, {"_id": 0})
                    .sort("timestamp", 1)
                    .limit(batch)
                )
                for doc in await cursor.to_list():
                    last = doc["timestamp"]
                    yield {
                        "id": doc["event_id"],
                        "event": doc["type"],
                        "data": event_json(doc).decode(),
                    }
                await asyncio.sleep(interval)
        finally:
            state["streams"] -= 1

    async def stream(request: Request) -> Response:
        session_id = request.path_params["session_id"]
        return EventSourceResponse(poll(session_id), ping=15, sep="\n")

    async def stats(request: Request) -> Response:
        body = {
            **counter.stats(),
            "subscribers": state["streams"],
        }
        return Response(orjson.dumps(body), media_type="application/json")

    return Starlette(
        routes=[
            Route("/v1/sessions/{session_id}/stream", stream),
            Route("/bench-stats", stats),
        ],
        lifespan=lifespan,
    )


async def serve(app: Starlette, max_lifetime: float) -> None:
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_config=None, access_log=False, lifespan="on"
    )
    config.timeout_graceful_shutdown = 2
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
            raise RuntimeError("uvicorn did not start")
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    print(orjson.dumps({"port": port, "pid": os.getpid()}).decode(), flush=True)
    try:
        async with asyncio.timeout(max_lifetime):
            await asyncio.shield(task)
    except TimeoutError:
        server.should_exit = True
        await task


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.seed_peer", description=__doc__)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--max-lifetime", type=float, default=900.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    raise_nofile()
    app = build_app(
        os.environ["MONGO_URL"],
        os.environ.get("MONGO_DB", "agentstream"),
        interval=args.interval,
        batch=args.batch,
    )
    asyncio.run(serve(app, args.max_lifetime), loop_factory=uvloop.new_event_loop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
