"""The event writer: validates, orders and stores events. Used by workers and the HTTP API.

Ordering: every session has a counter document in `sessions`. A write takes a block of
positions from it with one atomic findAndModify ($inc seq, $max ts), then inserts the batch in
one insertMany. Positions are dense, so a reader that sees position n+2 before n+1 knows a
concurrent write is still in flight and waits for it. The counter's $max makes timestamps
non-decreasing along positions, so `since_timestamp` maps to one position.

A position whose writer died between the two round trips is closed by a "void" document
(see `void`); the unique (session_id, seq) index decides between a late writer and the void,
and the late writer simply takes new positions. Retried writes are idempotent on event_id.
Once positions are taken, every failure voids them before it is raised, so no reader waits
SSE_GAP_TIMEOUT for a write that was refused.

All or nothing: with `transactions=True` (the API turns it on where the deployment is a replica
set) a batch of several events is inserted in one multi-document transaction, so it is stored
whole or not at all. A duplicate (an event_id stored by an earlier try, or a position a reader
voided) aborts the attempt; the writer voids that attempt's positions at once, takes the
already-stored events as they are and tries again with the rest. Without transactions (a
standalone) an attempt that fails half-way through may leave part of a batch stored; a retry
with the same event_ids completes it, each event stored exactly once.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from pymongo.errors import BulkWriteError

from app.errors import BadRequest, Conflict, PayloadTooLarge
from app.mongo import upsert
from app.store.codec import Document, event_json
from app.validation import event_type, identifier, json_object, optional_identifier

if TYPE_CHECKING:
    from app.mongo import Collections

logger = logging.getLogger(__name__)

type Clock = Callable[[], datetime.datetime]
MAX_BATCH = 1000
_PAYLOAD = ("type", "data", "trace_id")  # what an exact retry repeats
_ATTEMPTS = 5


def utc_now() -> datetime.datetime:
    now = datetime.datetime.now(datetime.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


# Event types that only the service writes: run lifecycle and the stream's own control events.
RESERVED_TYPE_PREFIXES = ("run.", "stream.")


def void_event_id(session_id: str, seq: int) -> str:
    # '#' and '/' never appear in client ids, so a void can never take a real event's id.
    return f"#void/{session_id}/{seq}"


@dataclasses.dataclass(frozen=True, slots=True)
class NewEvent:
    type: str
    data: dict[str, Any]
    trace_id: str | None = None
    event_id: str | None = None

    @classmethod
    def parse(cls, body: object, *, where: str = "event") -> NewEvent:
        """Validate one event object from a request body (400 on any bad field)."""
        if not isinstance(body, dict):
            raise BadRequest(f"{where} must be a JSON object")
        unknown = sorted(set(body) - {"type", "data", "trace_id", "event_id"})
        if unknown:
            raise BadRequest(f"{where} has unknown fields: {', '.join(unknown)}")
        for field in ("type", "data"):
            if field not in body:
                raise BadRequest(f"{where}.{field} is required")
        return cls(
            type=event_type(body["type"], f"{where}.type"),
            data=json_object(body["data"], f"{where}.data"),
            trace_id=optional_identifier(body.get("trace_id"), f"{where}.trace_id"),
            event_id=optional_identifier(body.get("event_id"), f"{where}.event_id"),
        )


class EventWriter:
    """Appends events to a session in one order that every reader can follow without gaps."""

    def __init__(
        self,
        collections: Collections,
        *,
        max_event_bytes: int = 64 * 1024,
        clock: Clock = utc_now,
        on_insert: Callable[[Sequence[Document], float], None] | None = None,
        transactions: bool = False,
    ) -> None:
        self._collections = collections
        self._transactions = transactions
        self._max_event_bytes = max_event_bytes
        self._clock = clock
        self._on_insert = on_insert

    async def append(
        self, session_id: str, events: Sequence[NewEvent], *, exact_retries: bool = False
    ) -> list[Document]:
        """Store `events` in order; return the stored documents, in input order.

        An event whose event_id is already stored in this session is not written again; the
        stored one is returned instead. With `exact_retries` (the HTTP API), a stored event
        whose type, data or trace_id differ from the new one is a Conflict: an idempotency key
        reused for another payload is an error, not a retry.
        """
        identifier(session_id, "session_id")
        if not events:
            return []
        if len(events) > MAX_BATCH:
            raise BadRequest(f"at most {MAX_BATCH} events per request")
        pending = [self._prepare(session_id, event) for event in events]
        self._check_unique_ids(pending)
        stored: dict[int, Document] = {}
        order = list(range(len(pending)))
        for _ in range(_ATTEMPTS):
            if not order:
                break
            order = await self._write(session_id, pending, order, stored, exact_retries)
        if order:
            raise RuntimeError(f"could not place {len(order)} events in session {session_id}")
        return [stored[i] for i in range(len(pending))]

    async def void(self, session_id: str, seqs: Iterable[int]) -> None:
        """Close positions that no writer filled, so readers stop waiting for them."""
        now = self._clock()
        docs: list[Document] = [
            {
                "event_id": void_event_id(session_id, seq),
                "session_id": session_id,
                "seq": seq,
                "void": True,
                "type": "void",
                "data": {},
                "trace_id": None,
                "timestamp": now,
            }
            for seq in seqs
        ]
        if not docs:
            return
        try:
            await self._collections.events.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            if any(err.get("code") != 11000 for err in exc.details.get("writeErrors", [])):
                raise
        logger.info("voided positions %s of session %s", [d["seq"] for d in docs], session_id)

    def _prepare(self, session_id: str, event: NewEvent) -> Document:
        doc: Document = {
            "event_id": event.event_id or uuid.uuid4().hex,
            "session_id": session_id,
            "seq": 0,
            "trace_id": event.trace_id,
            "type": event.type,
            "data": event.data,
            "timestamp": self._clock(),
        }
        size = len(event_json(doc))
        if size > self._max_event_bytes:
            raise PayloadTooLarge(
                f"event {doc['event_id']} is {size} bytes; the limit is {self._max_event_bytes}"
            )
        return doc

    @staticmethod
    def _check_unique_ids(pending: Sequence[Document]) -> None:
        seen: set[str] = set()
        for doc in pending:
            if doc["event_id"] in seen:
                raise BadRequest(f"event_id {doc['event_id']} appears twice in one request")
            seen.add(doc["event_id"])

    async def _write(
        self,
        session_id: str,
        pending: list[Document],
        order: list[int],
        stored: dict[int, Document],
        exact_retries: bool,
    ) -> list[int]:
        """One attempt: take positions for `order`, insert; return the indexes to try again."""
        last, timestamp = await self._allocate(session_id, len(order))
        first = last - len(order) + 1
        docs: list[Document] = []
        for offset, index in enumerate(order):
            doc = dict(pending[index], seq=first + offset, timestamp=timestamp)
            docs.append(doc)
        try:
            return await self._insert(session_id, order, docs, stored, exact_retries)
        except Exception:
            # Positions this attempt filled keep their document (a void there is a duplicate).
            try:
                await self.void(session_id, range(first, last + 1))
            except Exception:
                logger.warning(
                    "could not void positions %d-%d of session %s; readers void them after"
                    " SSE_GAP_TIMEOUT",
                    first,
                    last,
                    session_id,
                    exc_info=True,
                )
            raise

    async def _insert(
        self,
        session_id: str,
        order: list[int],
        docs: list[Document],
        stored: dict[int, Document],
        exact_retries: bool,
    ) -> list[int]:
        if self._transactions and len(docs) > 1:
            return await self._write_atomic(session_id, docs, order, stored, exact_retries)
        started = datetime.datetime.now(datetime.UTC)
        failed: dict[int, str] = {}
        try:
            await self._collections.events.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            failed = _duplicates(exc)
        if self._on_insert is not None:
            elapsed = (datetime.datetime.now(datetime.UTC) - started).total_seconds()
            self._on_insert([d for i, d in enumerate(docs) if i not in failed], elapsed)
        retry: list[int] = []
        known: list[tuple[int, Document]] = []
        for position, index in enumerate(order):
            reason = failed.get(position)
            if reason is None:
                stored[index] = docs[position]
            elif reason == "event_id":
                known.append((index, docs[position]))
            else:
                retry.append(index)
        if known:
            await self._resolve_known(session_id, known, stored, exact_retries)
        return retry

    async def _write_atomic(
        self,
        session_id: str,
        docs: list[Document],
        order: list[int],
        stored: dict[int, Document],
        exact_retries: bool,
    ) -> list[int]:
        """One attempt in one transaction: every doc is stored, or none is."""
        started = datetime.datetime.now(datetime.UTC)
        events = self._collections.events
        try:
            client = events.database.client
            async with client.start_session() as session, await session.start_transaction():
                await events.insert_many(docs, ordered=True, session=session)
        except BulkWriteError as exc:
            _duplicates(exc)  # anything but a duplicate key is raised from here
            await self.void(session_id, [doc["seq"] for doc in docs])  # nothing took them
            known = [(index, docs[position]) for position, index in enumerate(order)]
            await self._resolve_known(
                session_id, known, stored, exact_retries, void=False, missing_ok=True
            )
            return [index for index in order if index not in stored]
        if self._on_insert is not None:
            self._on_insert(docs, (datetime.datetime.now(datetime.UTC) - started).total_seconds())
        for position, index in enumerate(order):
            stored[index] = docs[position]
        return []

    async def _allocate(self, session_id: str, count: int) -> tuple[int, datetime.datetime]:
        now = self._clock()
        counter = await upsert(
            self._collections.sessions,
            {"_id": session_id},
            {"$inc": {"seq": count}, "$max": {"ts": now}, "$set": {"updated_at": now}},
        )
        assert counter is not None
        return int(counter["seq"]), counter["ts"]

    async def _resolve_known(
        self,
        session_id: str,
        known: list[tuple[int, Document]],
        stored: dict[int, Document],
        exact_retries: bool,
        *,
        void: bool = True,
        missing_ok: bool = False,
    ) -> None:
        """Retried events: return the stored copies, and void the positions taken for them.

        `missing_ok`: `known` may hold events that are not stored (a whole aborted attempt).
        """
        ids = [doc["event_id"] for _, doc in known]
        existing = {
            doc["event_id"]: doc
            async for doc in self._collections.events.find({"event_id": {"$in": ids}})
        }
        for index, doc in known:
            original = existing.get(doc["event_id"])
            if original is None and missing_ok:
                continue
            if original is None:
                raise RuntimeError(f"event {doc['event_id']} conflicted but cannot be found")
            if original["session_id"] != session_id:
                raise Conflict(f"event_id {doc['event_id']} is already used by another session")
            if exact_retries and any(original.get(k) != doc[k] for k in _PAYLOAD):
                raise Conflict(
                    f"event_id {doc['event_id']} is already stored with another type, data"
                    " or trace_id"
                )
            original.pop("_id", None)
            stored[index] = original
        if void:
            await self.void(session_id, [doc["seq"] for _, doc in known])


def _duplicates(exc: BulkWriteError) -> dict[int, str]:
    """Map each failed position in the batch to the unique key it hit ("event_id" or "seq")."""
    failed: dict[int, str] = {}
    for error in exc.details.get("writeErrors", []):
        if error.get("code") != 11000:
            raise exc
        pattern = error.get("keyPattern") or {}
        message = str(error.get("errmsg", ""))
        key = "event_id" if "event_id" in pattern or "event_id" in message else "seq"
        failed[int(error["index"])] = key
    return failed
