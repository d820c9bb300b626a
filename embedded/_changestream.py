"""`$changeStream` aggregates, their getMore and killCursors, answered from a `ChangeHistory`."""

from __future__ import annotations

import collections
import copy
import dataclasses
import itertools
import time
from collections.abc import Iterator
from typing import Any, cast

from mongoeco.change_streams import compile_change_stream_pipeline
from mongoeco.core.aggregation import apply_pipeline
from mongoeco.core.codec import DocumentCodec
from mongoeco.types import Timestamp  # type: ignore[attr-defined]

from embedded._batches import MAX_BSON_SIZE, bson_size
from embedded._history import (
    EVENT,
    INVALIDATE,
    ChangeHistory,
    ChangeRecord,
    CommandError,
    Document,
)

DB_LEVEL = "$cmd.aggregate"  # the collection name of a whole-database stream's cursor
_OPTIONS = frozenset(
    {
        "fullDocument",
        "fullDocumentBeforeChange",
        "resumeAfter",
        "startAfter",
        "startAtOperationTime",
        "allChangesForCluster",
        "showExpandedEvents",
    }
)
_RESUME_OPTIONS = frozenset({"resumeAfter", "startAfter", "startAtOperationTime"})
_FULL_DOCUMENT_MODES = frozenset({"default", "updateLookup", "whenAvailable", "required"})
_FIRST_BATCH = 101
_GET_MORE_BATCH = 1000
_AWAIT_MS = 1000  # a real server's default await time for a tailable awaitData getMore
_IDLE_SECONDS = 600.0
_FIRST_CURSOR_ID = 1 << 30  # int32 ids, far above mongoeco's own (which count from 1)


@dataclasses.dataclass(frozen=True, slots=True)
class StreamSpec:
    db: str | None  # None: the whole cluster
    coll: str | None  # None: the whole database
    full_document: str
    pipeline: list[dict[str, object]] | None


@dataclasses.dataclass(slots=True)
class StreamCursor:
    cursor_id: int
    namespace: str
    spec: StreamSpec
    position: int  # the sequence number of the last event scanned
    pending: collections.deque[Document] = dataclasses.field(default_factory=collections.deque)
    last_returned: Document | None = None
    invalidated: bool = False
    last_used: float = dataclasses.field(default_factory=time.monotonic)


class ChangeStreams:
    def __init__(self, history: ChangeHistory) -> None:
        self.history = history
        self._cursors: dict[int, StreamCursor] = {}
        self._ids = itertools.count(_FIRST_CURSOR_ID)
        self._interruptions = 0

    def owns(self, cursor_id: int) -> bool:
        return cursor_id in self._cursors

    def forget_history(self) -> None:
        """Discard the history; cursors that had read all of it carry on past the gap."""
        caught_up, gap = self.history.mark_gap()
        for cursor in self._cursors.values():
            if cursor.position == caught_up:
                cursor.position = gap

    def interrupt_waits(self) -> None:
        """End every waiting getMore now (their connections are gone)."""
        self._interruptions += 1
        self.history.notify()

    def open(self, db_name: str, command: Document) -> Document:
        """Answer an aggregate whose first stage is `$changeStream`."""
        self._reap_idle()
        self.history.drain()
        pipeline = cast(list[Document], command["pipeline"])
        options = pipeline[0]["$changeStream"]
        if not isinstance(options, dict):
            raise CommandError(14, "TypeMismatch", "$changeStream must take a nested object")
        spec = _stream_spec(db_name, command["aggregate"], options, pipeline[1:])
        namespace = f"{db_name}.{command['aggregate']}"
        cursor = StreamCursor(next(self._ids), namespace, spec, self._start(options))
        batch_size = cast(dict[str, Any], command.get("cursor") or {}).get("batchSize")
        batch = self._collect(cursor, _FIRST_BATCH if batch_size is None else int(batch_size))
        self._cursors[cursor.cursor_id] = cursor
        return self._reply(cursor, batch, "firstBatch")

    async def get_more(self, command: Document) -> Document:
        cursor = self._cursors[command["getMore"]]
        limit = int(command.get("batchSize") or _GET_MORE_BATCH)
        max_time_ms = command.get("maxTimeMS")
        timeout = (_AWAIT_MS if max_time_ms is None else int(max_time_ms)) / 1000
        deadline = time.monotonic() + timeout
        interruptions = self._interruptions
        while True:
            self.history.drain()
            try:
                batch = self._collect(cursor, limit)
            except CommandError:
                del self._cursors[cursor.cursor_id]  # a failed getMore kills its cursor
                raise
            remaining = deadline - time.monotonic()
            if batch or cursor.invalidated or remaining <= 0:
                break
            if interruptions != self._interruptions:
                break
            await self.history.wait(remaining)
        return self._reply(cursor, batch, "nextBatch")

    def kill(self, cursor_ids: list[int]) -> list[int]:
        """Kill the ids this owns; return those it killed."""
        killed = [cursor_id for cursor_id in cursor_ids if cursor_id in self._cursors]
        for cursor_id in killed:
            del self._cursors[cursor_id]
        return killed

    def _start(self, options: Document) -> int:
        token = options.get("resumeAfter") or options.get("startAfter")
        if token is not None:
            return self.history.seq_from_token(token)
        operation_time = options.get("startAtOperationTime")
        if operation_time is not None:
            if not isinstance(operation_time, Timestamp):
                raise CommandError(14, "TypeMismatch", "startAtOperationTime must be a timestamp")
            return self.history.seq_before_time((operation_time.time, operation_time.inc))
        return self.history.last_seq

    def _collect(self, cursor: StreamCursor, limit: int) -> list[Document]:
        cursor.last_used = time.monotonic()
        batch: list[Document] = []
        size = 0
        records = self.history.records_after(cursor.position)
        while len(batch) < limit:
            if cursor.pending:
                event = cursor.pending[0]
                size += bson_size(event)
                if batch and size > MAX_BSON_SIZE:
                    break  # mongod's 16 MB cap on one batch; the event opens the next one
                batch.append(cursor.pending.popleft())
                continue
            if cursor.invalidated:
                break
            record = next(records, None)
            if record is None:
                break
            cursor.position = record.seq
            cursor.pending.extend(self._render(cursor, record))
        if batch:
            cursor.last_returned = batch[-1]["_id"]
        return batch

    def _render(self, cursor: StreamCursor, record: ChangeRecord) -> Iterator[Document]:
        spec = cursor.spec
        snapshot = record.snapshot
        if (spec.db is not None and snapshot.db_name != spec.db) or (
            spec.coll is not None and snapshot.coll_name != spec.coll
        ):
            return
        yield from self._transform(spec, _change_event(self.history, record, spec.full_document))
        if snapshot.operation_type == "invalidate" and spec.coll is not None:
            cursor.invalidated = True
            yield from self._transform(spec, _invalidate_event(self.history, record))

    @staticmethod
    def _transform(spec: StreamSpec, event: Document) -> Iterator[Document]:
        results = apply_pipeline([event], spec.pipeline) if spec.pipeline else [event]
        for result in results:
            if result.get("_id") != event["_id"]:
                raise CommandError(
                    280,
                    "ChangeStreamFatalError",
                    "Encountered an event whose _id field, which contains the resume token, was "
                    "modified by the pipeline.",
                )
            yield cast(Document, DocumentCodec.to_pymongo(result))

    def _reply(self, cursor: StreamCursor, batch: list[Document], batch_name: str) -> Document:
        closed = cursor.invalidated and not cursor.pending
        if closed:
            self._cursors.pop(cursor.cursor_id, None)
        token = cursor.last_returned if cursor.pending else self.history.token(cursor.position)
        reply = {"id": 0 if closed else cursor.cursor_id, "ns": cursor.namespace, batch_name: batch}
        reply["postBatchResumeToken"] = token
        return {"cursor": reply, "ok": 1.0}

    def _reap_idle(self) -> None:
        horizon = time.monotonic() - _IDLE_SECONDS
        for cursor_id in [c.cursor_id for c in self._cursors.values() if c.last_used < horizon]:
            del self._cursors[cursor_id]


def _stream_spec(db_name: str, target: object, options: Document, stages: list[Any]) -> StreamSpec:
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise CommandError(40415, "Location40415", f"unknown $changeStream field: {unknown[0]}")
    if sum(options.get(key) is not None for key in _RESUME_OPTIONS) > 1:
        raise CommandError(
            50865,
            "Location50865",
            "Only one type of resume option is allowed, but multiple were found",
        )
    full_document = options.get("fullDocument", "default")
    if full_document not in _FULL_DOCUMENT_MODES:
        raise CommandError(2, "BadValue", f"unsupported fullDocument mode: {full_document!r}")
    if options.get("fullDocumentBeforeChange", "off") != "off":
        raise CommandError(
            115, "CommandNotSupported", "the embedded server keeps no pre-images (use 'off')"
        )
    pipeline = compile_change_stream_pipeline(DocumentCodec.to_internal(stages)) if stages else None
    if options.get("allChangesForCluster"):
        if db_name != "admin" or target != DB_LEVEL:
            raise CommandError(
                73, "InvalidNamespace", "allChangesForCluster needs {aggregate: 1} on admin"
            )
        return StreamSpec(None, None, full_document, pipeline)
    coll = None if target == DB_LEVEL else str(target)
    return StreamSpec(db_name, coll, full_document, pipeline)


def _change_event(history: ChangeHistory, record: ChangeRecord, full_document: str) -> Document:
    snapshot = record.snapshot
    kind = "drop" if snapshot.operation_type == "invalidate" else snapshot.operation_type
    event = _event_head(history, record, kind, EVENT)
    if snapshot.full_document is not None and (
        kind in ("insert", "replace") or (kind == "update" and full_document != "default")
    ):
        event["fullDocument"] = copy.deepcopy(snapshot.full_document)
    event["ns"] = {"db": snapshot.db_name, "coll": snapshot.coll_name}
    if kind != "drop":
        event["documentKey"] = copy.deepcopy(snapshot.document_key)
    if snapshot.update_description is not None:
        event["updateDescription"] = copy.deepcopy(snapshot.update_description)
    return event


def _invalidate_event(history: ChangeHistory, record: ChangeRecord) -> Document:
    return _event_head(history, record, "invalidate", INVALIDATE)


def _event_head(history: ChangeHistory, record: ChangeRecord, kind: str, token: int) -> Document:
    return {
        "_id": history.token(record.seq, record.cluster_time, token),
        "operationType": kind,
        "clusterTime": Timestamp(*record.cluster_time),
        "wallTime": record.wall_time,
    }
