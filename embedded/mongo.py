"""A MongoDB-protocol server for development and tests: mongoeco's wire server, extended.

mongoeco (PyPI) answers most commands, in memory. This wraps its command executor to add what
the project needs and mongoeco lacks: a replica-set `hello` (so PyMongo allows sessions,
transactions and change streams), `collMod` of a TTL index, and `$changeStream` aggregates
with getMore, resume tokens and `postBatchResumeToken`, served to PyMongo's real ChangeStream.
Tests can inject faults: `drop_connections()` and `forget_history()`.

Run on its own: `python -m embedded.mongo [--host H] [--port P] [--standalone]
[--replica-set NAME] [--history-limit N] [--data-dir PATH]` prints `{"uri": ...}` on one line
when ready and serves until SIGTERM or SIGINT; SIGUSR1 drops every client connection, SIGUSR2
forgets the change-stream history. With `--data-dir` the data outlives the process (see
`embedded._store`); without it, everything is in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from pathlib import Path
from types import TracebackType
from typing import Self

from mongoeco.api import AsyncMongoClient
from mongoeco.engines.memory import MemoryEngine
from mongoeco.wire.proxy import AsyncMongoEcoProxyServer

from embedded._batches import CappedCursorStore
from embedded._changestream import ChangeStreams
from embedded._executor import Executor
from embedded._history import ChangeHistory, SequencedHub
from embedded._replay import replay
from embedded._store import FSYNC_SECONDS, DataDir
from embedded.engine import IndexedMemoryEngine

logger = logging.getLogger(__name__)

_MIN_HUB_RETENTION = 10_000
ENGINES: dict[str, type[MemoryEngine]] = {"indexed": IndexedMemoryEngine, "mongoeco": MemoryEngine}


class EmbeddedMongoServer:
    """mongoeco's wire server with change streams, collMod and fault injection.

    `replica_set=None` makes a standalone, which refuses `$changeStream` (code 40573).
    `history_limit` is how many change events stay resumable (up to an eighth more are kept
    between prunings); a resume token older than that answers 286 ChangeStreamHistoryLost.
    `data_dir` keeps the data across restarts (see `embedded._store`); None keeps it in memory.
    `engine="mongoeco"` serves from mongoeco's unmodified memory engine (for comparisons).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        replica_set: str | None = "rs0",
        history_limit: int = 100_000,
        data_dir: Path | None = None,
        engine: str = "indexed",
    ) -> None:
        if history_limit < 1:
            raise ValueError("history_limit must be positive")
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}")
        self._engine_class = ENGINES[engine]
        self._host = host
        self._port = port
        self._replica_set = replica_set
        self._history_limit = history_limit
        self._data_dir = None if data_dir is None else DataDir(data_dir)
        self._engine: MemoryEngine | None = None
        self._client: AsyncMongoClient | None = None
        self._proxy: AsyncMongoEcoProxyServer | None = None
        self._history: ChangeHistory | None = None
        self._streams: ChangeStreams | None = None
        self._syncing: asyncio.Task[None] | None = None
        self._uri: str | None = None

    @property
    def uri(self) -> str:
        if self._uri is None:
            raise RuntimeError("the embedded MongoDB server is not running")
        return self._uri

    async def start(self) -> str:
        """Listen; return the URI (`mongodb://127.0.0.1:PORT/?directConnection=true`)."""
        if self._uri is None:
            try:
                self._uri = await self._start()
            except BaseException:
                await self.close()
                raise
            logger.info("embedded MongoDB server listening: %s", self._uri)
        return self._uri

    async def _start(self) -> str:
        self._engine = engine = self._engine_class()
        resumed = None if self._data_dir is None else self._data_dir.load_snapshot(engine)
        # A client of our own, not the proxy's: one command's changes must all fit in its hub
        # until they are drained, and the hub must be ours (see SequencedHub).
        self._client = AsyncMongoClient(engine)
        hub = None
        if self._replica_set is not None or self._data_dir is not None:
            hub = SequencedHub(max_retained_events=max(self._history_limit, _MIN_HUB_RETENTION))
            self._client._change_hub = hub  # before any database or collection exists
        await self._client.__aenter__()  # type: ignore[no-untyped-call]
        replayed = 0
        if self._data_dir is not None:  # before the history watches: replaying is not news
            replayed = await replay(self._client, self._data_dir.journaled())
            if replayed:
                logger.info("replayed %d journaled changes from %s", replayed, self._data_dir.path)
                resumed = None  # after a crash, tokens from before it are not trusted
        if hub is not None:
            self._history = ChangeHistory(hub, self._history_limit, resume=resumed)
        if self._data_dir is not None and self._history is not None:
            if replayed:
                self._data_dir.save_snapshot(engine, self._history.position())
            self._data_dir.open_journal()
            self._history.on_append = self._data_dir.record_change
            self._syncing = asyncio.create_task(self._sync_journal(self._data_dir))
        if self._replica_set is not None and self._history is not None:
            self._streams = ChangeStreams(self._history)
        self._proxy = AsyncMongoEcoProxyServer(
            client=self._client, host=self._host, port=self._port
        )
        self._proxy._cursor_store = CappedCursorStore()
        executor = Executor(
            self._proxy,
            self._client,
            history=self._history,
            streams=self._streams,
            replica_set=self._replica_set,
            data_dir=self._data_dir,
        )
        self._proxy._executor = executor
        address = await self._proxy.start()
        host = "127.0.0.1" if address.host in ("0.0.0.0", "::") else address.host
        executor.member = f"{host}:{address.port}"
        return f"mongodb://{executor.member}/?directConnection=true"

    @staticmethod
    async def _sync_journal(data_dir: DataDir) -> None:
        while True:
            await asyncio.sleep(FSYNC_SECONDS)
            await asyncio.to_thread(data_dir.sync)

    async def close(self) -> None:
        """Stop serving; with a data directory, write the snapshot (nothing is lost)."""
        proxy, client, engine, history = self._proxy, self._client, self._engine, self._history
        syncing, self._syncing = self._syncing, None
        self._proxy = self._client = self._engine = self._history = self._streams = None
        self._uri = None
        try:
            if proxy is not None:
                await proxy.close()
            if syncing is not None:
                syncing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await syncing
            if self._data_dir is not None and engine is not None and history is not None:
                history.drain()
                self._data_dir.flush()
                self._data_dir.save_snapshot(engine, history.position())
        finally:
            if self._data_dir is not None:
                self._data_dir.close()
            if client is not None:
                await client.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def drop_connections(self) -> None:
        """Abort every open client connection at once; the server keeps accepting new ones."""
        server = None if self._proxy is None else self._proxy._server
        if server is None:
            return
        server.abort_clients()
        if self._streams is not None:
            self._streams.interrupt_waits()
        logger.info("dropped every client connection")

    def forget_history(self) -> None:
        """Discard the retained change-stream history: resuming from an earlier token gets 286."""
        if self._streams is not None:
            self._streams.forget_history()
            logger.info("forgot the change-stream history")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m embedded.mongo", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--replica-set", default="rs0", metavar="NAME")
    parser.add_argument("--standalone", action="store_true", help="no replica set, no streams")
    parser.add_argument("--history-limit", type=int, default=100_000, metavar="EVENTS")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        metavar="PATH",
        help="keep the data there across restarts (default: in memory only)",
    )
    parser.add_argument("--engine", choices=sorted(ENGINES), default="indexed")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    server = EmbeddedMongoServer(
        host=args.host,
        port=args.port,
        replica_set=None if args.standalone else args.replica_set,
        history_limit=args.history_limit,
        data_dir=args.data_dir,
        engine=args.engine,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    handlers = {
        signal.SIGTERM: stop.set,
        signal.SIGINT: stop.set,
        signal.SIGUSR1: server.drop_connections,
        signal.SIGUSR2: server.forget_history,
    }
    async with server:
        for signum, handler in handlers.items():
            loop.add_signal_handler(signum, handler)
        sys.stdout.write(json.dumps({"uri": server.uri}) + "\n")
        sys.stdout.flush()
        await stop.wait()
        logger.info("stopping")
    for signum in handlers:
        loop.remove_signal_handler(signum)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
