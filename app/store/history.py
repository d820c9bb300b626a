"""Reads of stored events. Every query here names the index it uses."""

from __future__ import annotations

import dataclasses
import datetime
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from app.store.codec import Document
from app.store.tokens import TraceCursor

if TYPE_CHECKING:
    from app.auth.policy import Patterns
    from app.mongo import Collections

_NO_ID = {"_id": 0}
# Every query names its index (app.migrations.spec), so none can fall back to a collection scan.
SESSION_SEQ = "session_seq"
SESSION_TIMESTAMP = "session_timestamp"


@dataclasses.dataclass(frozen=True, slots=True)
class Bounds:
    first: int | None  # the oldest retained position (void or not), None when nothing is retained
    last: int  # the last position handed out by the session's counter, 0 for a new session


class History:
    def __init__(
        self,
        collections: Collections,
        *,
        on_query: Callable[[str, float], None] | None = None,
    ) -> None:
        self._events = collections.events
        self._sessions = collections.sessions
        self._on_query = on_query

    async def after(self, session_id: str, seq: int, limit: int) -> list[Document]:
        """Up to `limit` stored positions after `seq`, voids included (index session_seq)."""
        started = time.perf_counter()
        cursor = (
            self._events.find({"session_id": session_id, "seq": {"$gt": seq}}, _NO_ID)
            .sort("seq", 1)
            .limit(limit)
            .hint(SESSION_SEQ)
        )
        docs = await cursor.to_list()
        self._observe("after", started)
        return docs

    async def positions(self, session_id: str, seqs: list[int]) -> list[Document]:
        """The stored documents at exactly these positions (index session_seq)."""
        started = time.perf_counter()
        cursor = self._events.find({"session_id": session_id, "seq": {"$in": seqs}}, _NO_ID).hint(
            SESSION_SEQ
        )
        docs = await cursor.to_list()
        self._observe("positions", started)
        return docs

    async def poll(self, positions: Mapping[str, int], batch: int) -> list[Document]:
        """For each session, up to `batch` positions after its given one, in one query.

        Positions are dense, so the range (seq, seq + batch] caps each session at `batch`
        documents, and each clause is a bounded scan of index session_seq.
        """
        if not positions:
            return []
        clauses = [
            {"session_id": session_id, "seq": {"$gt": seq, "$lte": seq + batch}}
            for session_id, seq in positions.items()
        ]
        query = clauses[0] if len(clauses) == 1 else {"$or": clauses}
        started = time.perf_counter()
        docs = await self._events.find(query, _NO_ID).to_list()
        self._observe("poll", started)
        return docs

    async def position_before(self, session_id: str, since: datetime.datetime) -> int | None:
        """The last position of an event older than `since` (index session_timestamp), or None.

        Timestamps never decrease along positions (see app.store.events), so every event
        after the returned position, committed or still in flight, is at or after `since`.
        Voids carry the time they were written, so they are left out.
        """
        started = time.perf_counter()
        real = {"session_id": session_id, "void": {"$ne": True}}
        before = await self._events.find_one(
            {**real, "timestamp": {"$lt": since}},
            {"timestamp": 1},
            sort=[("timestamp", -1)],
            hint=SESSION_TIMESTAMP,
        )
        if before is None:
            self._observe("since", started)
            return None
        tied = await self._events.find_one(
            {**real, "timestamp": before["timestamp"]},
            {"seq": 1},
            sort=[("seq", -1)],
            hint=SESSION_TIMESTAMP,
        )
        self._observe("since", started)
        assert tied is not None
        return int(tied["seq"])

    async def bounds(self, session_id: str) -> Bounds:
        """The oldest retained position and the counter's last one (2 point reads)."""
        started = time.perf_counter()
        oldest = await self._events.find_one(
            {"session_id": session_id}, {"seq": 1}, sort=[("seq", 1)], hint=SESSION_SEQ
        )
        counter = await self._sessions.find_one({"_id": session_id}, {"seq": 1})
        self._observe("bounds", started)
        return Bounds(
            first=None if oldest is None else int(oldest["seq"]),
            last=0 if counter is None else int(counter["seq"]),
        )

    async def by_event_id(self, event_id: str) -> Document | None:
        """One event (index event_id)."""
        started = time.perf_counter()
        doc = await self._events.find_one(
            {"event_id": event_id, "void": {"$ne": True}}, _NO_ID, hint="event_id"
        )
        self._observe("event", started)
        return doc

    async def by_trace(
        self,
        trace_id: str,
        limit: int,
        sessions: Patterns | None = None,
        after: TraceCursor | None = None,
    ) -> list[Document]:
        """Events of a trace in `sessions` (default: every session), oldest first, after
        `after` (index trace_id). The session condition is part of the query, not a filter
        afterwards; the order (timestamp, session_id, seq) is total, so `after` pages without
        a gap.
        """
        if sessions is not None and sessions.empty:
            return []
        started = time.perf_counter()
        conditions: list[Document] = [{"trace_id": trace_id}]
        if sessions is not None and (covered := sessions.query("session_id")):
            conditions.append(covered)
        if after is not None:
            ts, session_id, seq = after.timestamp, after.session_id, after.seq
            conditions.append(
                {
                    "$or": [
                        {"timestamp": {"$gt": ts}},
                        {"timestamp": ts, "session_id": {"$gt": session_id}},
                        {"timestamp": ts, "session_id": session_id, "seq": {"$gt": seq}},
                    ]
                }
            )
        query: Document = {}
        for condition in conditions:  # one flat filter unless two conditions share a key
            if query.keys() & condition.keys():
                query = {"$and": conditions}
                break
            query.update(condition)
        cursor = (
            self._events.find(query, _NO_ID)
            .sort([("timestamp", 1), ("session_id", 1), ("seq", 1)])
            .hint("trace_id")
        )
        docs = await cursor.limit(limit).to_list()
        self._observe("trace", started)
        return docs

    def _observe(self, query: str, started: float) -> None:
        if self._on_query is not None:
            self._on_query(query, time.perf_counter() - started)
