"""The embedded server's command executor: mongoeco's, with the commands this server adds or
changes answered first (see `embedded.mongo`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from bson import ObjectId
from mongoeco.api import AsyncMongoClient
from mongoeco.errors import BulkWriteError
from mongoeco.wire.connections import WireConnectionContext
from mongoeco.wire.executor import WireCommandExecutor
from mongoeco.wire.proxy import AsyncMongoEcoProxyServer
from mongoeco.wire.requests import WireRequestContext
from mongoeco.wire.surface import WIRE_SUPPORTED_COMMANDS, WireSurface

from embedded._batches import MAX_BSON_SIZE, bson_size
from embedded._changestream import DB_LEVEL, ChangeStreams
from embedded._collmod import coll_mod
from embedded._collstats import estimated_coll_stats
from embedded._history import ChangeHistory, CommandError, Document
from embedded._store import DataDir

logger = logging.getLogger(__name__)

_HELLO = frozenset({"hello", "isMaster", "ismaster"})
_CATALOG = frozenset({"create", "createIndexes", "dropIndexes", "collMod"})
_INSERT_CHUNK = 100
_SURFACE = WireSurface(supported_commands=(*WIRE_SUPPORTED_COMMANDS, "collMod"))
_ELECTION_ID = ObjectId("7fffffff0000000000000001")


def _too_large(index: int, size: int) -> Document:
    return {
        "index": index,
        "code": 10334,
        "errmsg": f"object to insert too large. size in bytes: {size}, max size: {MAX_BSON_SIZE}",
    }


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


class Executor(WireCommandExecutor):
    """mongoeco's executor, with the commands this server adds or changes answered first."""

    def __init__(
        self,
        proxy: AsyncMongoEcoProxyServer,
        client: AsyncMongoClient,
        *,
        history: ChangeHistory | None,
        streams: ChangeStreams | None,
        replica_set: str | None,
        data_dir: DataDir | None = None,
    ) -> None:
        super().__init__(
            client,
            proxy._cursor_store,
            proxy._session_store,
            surface=_SURFACE,
            auth=proxy._auth,
        )
        self._mongo = client
        self._history = history
        self._streams = streams
        self._data_dir = data_dir
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
            reply = await self._dispatch(context)
        except CommandError as error:
            return error.to_document()
        finally:
            # Every change the command made, before it answers: to change streams, and to
            # the journal (handed to the OS, so a killed server loses nothing acknowledged).
            if self._history is not None:
                self._history.drain()
            if self._data_dir is not None:
                self._data_dir.flush()
        if self._data_dir is not None and context.command_name in _CATALOG and reply.get("ok"):
            await self._journal_indexes(context)
        return reply

    async def _journal_indexes(self, context: WireRequestContext) -> None:
        assert self._data_dir is not None
        coll_name = context.command_document[context.command_name]
        database = self._mongo.get_database(context.db_name)
        if coll_name not in await database.list_collection_names():
            return
        reply: Document = await database.command({"listIndexes": coll_name})
        self._data_dir.record_indexes(context.db_name, coll_name, reply["cursor"]["firstBatch"])
        self._data_dir.flush()

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
        if name == "insert" and isinstance(command.get("documents"), list):
            return await self._insert(context)
        if name == "collStats":
            database = self._mongo.get_database(context.db_name)
            reply = await estimated_coll_stats(self._mongo._engine, database, command)
            if reply is not None:
                return reply
        return await super().execute_prepared(context)

    async def _insert(self, context: WireRequestContext) -> dict[str, Any]:
        """An insert; documents over 16 MB are refused as mongod refuses them (code 10334)."""
        command = context.command_document
        documents: list[Document] = command["documents"]
        too_large = [
            i for i, document in enumerate(documents) if bson_size(document) > MAX_BSON_SIZE
        ]
        if not too_large:
            if len(documents) > 1:
                return await self._insert_batch(context)
            return await super().execute_prepared(context)
        ordered = bool(command.get("ordered", True))
        keep = [i for i in range(len(documents)) if i not in too_large]
        if ordered:
            keep = [i for i in keep if i < too_large[0]]
            too_large = too_large[:1]
        command["documents"] = [documents[i] for i in keep]
        reply: dict[str, Any] = {"n": 0, "ok": 1.0}
        try:
            if keep:
                reply = await self._insert_batch(context)
        finally:
            command["documents"] = documents
        if reply.get("ok") != 1:
            return reply
        errors = [{**e, "index": keep[e["index"]]} for e in reply.get("writeErrors", [])]
        if not (ordered and errors):
            errors += [_too_large(i, bson_size(documents[i])) for i in too_large]
        reply["writeErrors"] = sorted(errors, key=lambda error: int(error["index"]))
        return reply

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
