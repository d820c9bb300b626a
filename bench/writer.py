"""The database writer of the database-fed benchmarks: real events through `EventWriter`.

`python -m bench.writer --sessions K --prefix P --rate R --duration S` (MONGO_URL, MONGO_DB
from the environment). Events go round-robin to sessions `<P>0 .. <P>K-1`, one
`EventWriter.append` per event (what a POST of one event does), at most `--in-flight` at once.
Each event's data carries `sent_ns`, the wall clock when it was handed to the writer, so the
client measures writer-to-client latency. Prints `{"result": {"written": ..., ...}}`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time

import orjson
import uvloop
from pymongo.errors import PyMongoError

from app.mongo import Collections, connect
from app.store.events import EventWriter, NewEvent
from bench.synthetic import DELTA, Pacer

logger = logging.getLogger(__name__)


class Writes:
    def __init__(self, writer: EventWriter, in_flight: int) -> None:
        self.writer = writer
        self.gate = asyncio.Semaphore(in_flight)
        self.written = 0
        self.errors = 0
        self.tasks: set[asyncio.Task[None]] = set()

    async def one(self, session_id: str) -> None:
        event = NewEvent("message.delta", {"sent_ns": time.time_ns(), "delta": DELTA})
        try:
            await self.writer.append(session_id, [event])
            self.written += 1
        except PyMongoError as exc:
            self.errors += 1
            logger.warning("write failed: %s", exc)
        finally:
            self.gate.release()

    async def start(self, session_id: str) -> None:
        await self.gate.acquire()
        task = asyncio.create_task(self.one(session_id))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


async def run(args: argparse.Namespace) -> dict[str, float]:
    client = connect(os.environ["MONGO_URL"])
    writes = Writes(
        EventWriter(Collections.of(client, os.environ.get("MONGO_DB", "agentstream"))),
        args.in_flight,
    )
    await client.admin.command("ping")
    print(orjson.dumps({"ready": True}).decode(), flush=True)  # start-up can take seconds
    started = time.monotonic()
    turn = 0
    try:
        async for due in Pacer(args.rate, tick=0.005).ticks(args.duration):
            for _ in range(due):
                await writes.start(f"{args.prefix}{turn % args.sessions}")
                turn += 1
        async with asyncio.timeout(30):
            await asyncio.gather(*writes.tasks)
    finally:
        await client.close()
    elapsed = time.monotonic() - started
    return {
        "offered": turn,
        "written": writes.written,
        "write_errors": writes.errors,
        "rate": writes.written / elapsed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.writer", description=__doc__)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--prefix", default="bench-")
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--in-flight", type=int, default=32)
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 3600:
        parser.error("--duration must be in (0, 3600]")
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    result = uvloop.run(run(args))
    print(orjson.dumps({"result": result}).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
