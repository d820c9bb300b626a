"""A MongoDB-protocol server for development and tests: mongoeco's wire server, extended.

mongoeco (PyPI) answers most commands, in memory. This wraps its command executor to add what
the project needs and mongoeco lacks: a replica-set `hello` (so PyMongo allows sessions,
transactions and change streams), `collMod` of a TTL index, and `$changeStream` aggregates
with getMore, resume tokens and `postBatchResumeToken`, served to PyMongo's real ChangeStream.
Tests can inject faults: `drop_connections()` and `forget_history()`.

Run on its own: `python -m embedded.mongo [--host H] [--port P] [--standalone]
[--replica-set NAME] [--history-limit N]` prints `{"uri": ...}` on one line when ready and
serves until SIGTERM or SIGINT; SIGUSR1 drops every client connection, SIGUSR2 forgets the
change-stream history.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from bson import ObjectId
from mongoeco.api import AsyncMongoClient
from mongoeco.errors import BulkWriteError
from mongoeco.wire.connections import WireConnectionContext
from mongoeco.wire.executor import WireCommandExecutor
from mongoeco.wire.proxy import AsyncMongoEcoProxyServer
from mongoeco.wire.requests import WireRequestContext
from mongoeco.wire.surface import WIRE_SUPPORTED_COMMANDS, WireSurface

from embedded._batches import CappedCursorStore
from embedded._changestream import DB_LEVEL, ChangeStreams
from embedded._collmod import coll_mod
from embedded._history import ChangeHistory, CommandError, Document, SequencedHub
from embedded.engine import IndexedMemoryEngine

logger = logging.getLogger(__name__)

_HELLO = frozenset({"hello", "isMaster", "ismaster"})
_SURFACE = WireSurface(supported_commands=(*WIRE_SUPPORTED_COMMANDS, "collMod"))
_ELECTION_ID = ObjectId("7fffffff0000000000000001")
_MIN_HUB_RETENTION = 10_000
_INSERT_CHUNK = 100


def _is_change_stream(command: Document) -> bool:
    pipeline = command.get("pipeline")
    if not isinstance(pipeline, list) or not pipeline:
        return False
    return isinstance(pipeline[0], dict) and "$changeStream" in pipeline[0]


def _normalized(body: Document) -> Document:
    """Int64 cursor ids as plain ints (mongoeco's validation wants int), and a whole-database
    `$changeStream` aggregate (`aggregate: 1`, which mongoeco rejects) on a named target."""
    body = dict(body)
    if "getMore" in body:
        body["getMore"] = _as_int(body["getMore"])
    if isinstance(body.get("cursors"), list):
        body["cursors"] = [_as_int(cursor_id) for cursor_id in body["cursors"]]
    if body.get("aggregate") == 1 and _is_change_stream(body):
        body["aggregate"] = DB_LEVEL
    return body


def _as_int(value: object) -> object:
    inner = getattr(value, "value", None)  # mongoeco's BsonInt64 wrapper
    return inner if isinstance(inner, int) and not isinstance(value, int) else value


class _Executor(WireCommandExecutor):
    """mongoeco's executor, with the commands this server adds or changes answered first."""

    def __init__(
        self,
        proxy: AsyncMongoEcoProxyServer,
        client: AsyncMongoClient,
        *,
        streams: ChangeStreams | None,
        replica_set: str | None,
    ) -> None:
        super().__init__(
            client,
            proxy._cursor_store,
            proxy._session_store,
            surface=_SURFACE,
            auth=proxy._auth,
        )
        self._mongo = client
        self._streams = streams
        self._replica_set = replica_set
        self.member = ""

    def _build_request_context(
        self,
        body: dict[str, Any],
        *,
        connection: WireConnectionContext,
        db_name: str | None = None,
        on_normalized: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> WireRequestContext:
        return super()._build_request_context(
            _normalized(body), connection=connection, db_name=db_name, on_normalized=on_normalized
        )

    async def execute_prepared(self, context: WireRequestContext) -> dict[str, Any]:
        try:
            return await self._dispatch(context)
        except CommandError as error:
            return error.to_document()
        finally:
            if self._streams is not None:
                self._streams.history.drain()  # every change a command made, before it answers

    async def _dispatch(self, context: WireRequestContext) -> dict[str, Any]:
        name, command = context.command_name, context.command_document
        if name in _HELLO:
            return self._hello(name, await super().execute_prepared(context))
        if name == "aggregate" and _is_change_stream(command):
            if self._streams is None:  # what a standalone mongod answers
                raise CommandError(
                    40573,
                    "Location40573",
                    "The $changeStream stage is only supported on replica sets",
                )
            return self._streams.open(context.db_name, command)
        if name == "getMore":
            return await self._get_more(context)
        if name == "killCursors":
            return await self._kill_cursors(context)
        if name == "collMod":
            return await coll_mod(self._mongo.get_database(context.db_name), command)
        if name == "insert" and len(command.get("documents") or ()) > 1:
            return await self._insert_batch(context)
        return await super().execute_prepared(context)

    async def _insert_batch(self, context: WireRequestContext) -> dict[str, Any]:
        """An insert of many documents, in chunks with the event loop free between them, so
        other clients (drivers' heartbeats among them) are answered during a large batch."""
        command = context.command_document
        documents: list[Document] = command["documents"]
        ordered = bool(command.get("ordered", True))
        inserted, errors = 0, []
        for start in range(0, len(documents), _INSERT_CHUNK):
            if start:
                await asyncio.sleep(0)
            reply = await self._insert_chunk(context, documents[start : start + _INSERT_CHUNK])
            if reply.get("ok") != 1:
                return reply
            inserted += reply["n"]
            failed = [{**e, "index": e["index"] + start} for e in reply.get("writeErrors", [])]
            errors.extend(failed)
            if ordered and failed:
                break
        answer: dict[str, Any] = {"n": inserted, "ok": 1.0}
        if errors:
            answer["writeErrors"] = errors
        return answer

    async def _insert_chunk(
        self, context: WireRequestContext, documents: list[Document]
    ) -> dict[str, Any]:
        """mongoeco's insert command writes one document at a time; its insert_many writes
        the chunk at once (about 30 times faster)."""
        command = context.command_document
        collection = self._mongo.get_database(context.db_name).get_collection(command["insert"])
        try:
            await collection.insert_many(
                documents,
                ordered=bool(command.get("ordered", True)),
                bypass_document_validation=bool(command.get("bypassDocumentValidation")),
                session=context.session,
            )
        except BulkWriteError as error:
            details: Document = error.details  # type: ignore[attr-defined]
            errors = [{k: v for k, v in e.items() if k != "op"} for e in details["writeErrors"]]
            return {"n": details["nInserted"], "writeErrors": errors, "ok": 1.0}
        except (TypeError, ValueError):
            # Raised while preparing the chunk, before any write: the per-document path
            # reports each bad document as a write error, as MongoDB does.
            whole = command["documents"]
            command["documents"] = documents
            try:
                return await super().execute_prepared(context)
            finally:
                command["documents"] = whole
        return {"n": len(documents), "ok": 1.0}

    def _hello(self, name: str, reply: dict[str, Any]) -> dict[str, Any]:
        if self._replica_set is None:
            return reply
        reply.update(
            setName=self._replica_set,
            setVersion=1,
            hosts=[self.member],
            primary=self.member,
            me=self.member,
            secondary=False,
            electionId=_ELECTION_ID,
        )
        reply["isWritablePrimary" if name == "hello" else "ismaster"] = True
        return reply

    async def _get_more(self, context: WireRequestContext) -> dict[str, Any]:
        cursor_id = context.command_document["getMore"]
        if self._streams is not None and self._streams.owns(cursor_id):
            return await self._streams.get_more(context.command_document)
        if cursor_id not in self._cursor_store._state:
            raise CommandError(43, "CursorNotFound", f"cursor id {cursor_id} not found")
        return await super().execute_prepared(context)

    async def _kill_cursors(self, context: WireRequestContext) -> dict[str, Any]:
        command = context.command_document
        cursor_ids: list[int] = command["cursors"]
        killed = [] if self._streams is None else self._streams.kill(cursor_ids)
        if len(killed) == len(cursor_ids):
            return {"cursorsKilled": killed, "cursorsNotFound": [], "cursorsAlive": [], "ok": 1.0}
        command["cursors"] = [cursor_id for cursor_id in cursor_ids if cursor_id not in killed]
        reply = await super().execute_prepared(context)
        reply["cursorsKilled"] = [*killed, *reply.get("cursorsKilled", [])]
        return reply


class EmbeddedMongoServer:
    """mongoeco's wire server with change streams, collMod and fault injection.

    `replica_set=None` makes a standalone, which refuses `$changeStream` (code 40573).
    `history_limit` is how many change events stay resumable (up to an eighth more are kept
    between prunings); a resume token older than that answers 286 ChangeStreamHistoryLost.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        replica_set: str | None = "rs0",
        history_limit: int = 100_000,
    ) -> None:
        if history_limit < 1:
            raise ValueError("history_limit must be positive")
        self._host = host
        self._port = port
        self._replica_set = replica_set
        self._history_limit = history_limit
        self._client: AsyncMongoClient | None = None
        self._proxy: AsyncMongoEcoProxyServer | None = None
        self._streams: ChangeStreams | None = None
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
        # A client of our own, not the proxy's: one command's changes must all fit in its hub
        # until they are drained, and the hub must be ours (see SequencedHub).
        self._client = AsyncMongoClient(IndexedMemoryEngine())
        if self._replica_set is not None:
            retention = max(self._history_limit, _MIN_HUB_RETENTION)
            hub = SequencedHub(max_retained_events=retention)
            self._client._change_hub = hub  # before any database or collection exists
            self._streams = ChangeStreams(ChangeHistory(hub, self._history_limit))
        await self._client.__aenter__()  # type: ignore[no-untyped-call]
        self._proxy = AsyncMongoEcoProxyServer(
            client=self._client, host=self._host, port=self._port
        )
        self._proxy._cursor_store = CappedCursorStore()
        executor = _Executor(
            self._proxy, self._client, streams=self._streams, replica_set=self._replica_set
        )
        self._proxy._executor = executor
        address = await self._proxy.start()
        host = "127.0.0.1" if address.host in ("0.0.0.0", "::") else address.host
        executor.member = f"{host}:{address.port}"
        return f"mongodb://{executor.member}/?directConnection=true"

    async def close(self) -> None:
        proxy, client = self._proxy, self._client
        self._proxy = self._client = self._streams = None
        self._uri = None
        try:
            if proxy is not None:
                await proxy.close()
        finally:
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
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    server = EmbeddedMongoServer(
        host=args.host,
        port=args.port,
        replica_set=None if args.standalone else args.replica_set,
        history_limit=args.history_limit,
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
