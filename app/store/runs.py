"""Run records: the durable lifecycle of each agent run (ARQ's own results expire).

Every status change is one findOneAndUpdate whose filter names the statuses it may leave, so a
terminal status is never overwritten and two writers racing on a run cannot both win.
"""

from __future__ import annotations

import datetime
import enum
from typing import TYPE_CHECKING, Any

from pymongo import ReturnDocument

from app.mongo import upsert
from app.store.codec import Document
from app.store.events import Clock, NewEvent, utc_now
from app.validation import format_timestamp

if TYPE_CHECKING:
    from app.mongo import Collections

_NO_ID = {"_id": 0}
# Events a run writes have ids "<run_id>~<step>" (queued, started, end, 1, 2, ...). Client ids
# never hold "~" (app.validation.identifier), so no client can take one of these ids first.
RUN_EVENT_SEPARATOR = "~"


def run_event_id(run_id: str, step: str | int) -> str:
    return f"{run_id}{RUN_EVENT_SEPARATOR}{step}"


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def terminal(self) -> bool:
        return self not in (RunStatus.QUEUED, RunStatus.RUNNING)


ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)

# The one event that ends a run, per terminal status.
TERMINAL_EVENT = {
    RunStatus.SUCCEEDED: "run.completed",
    RunStatus.FAILED: "run.failed",
    RunStatus.CANCELLED: "run.cancelled",
    RunStatus.TIMED_OUT: "run.timed_out",
}


def terminal_event(run: Document, status: RunStatus, error: dict[str, str] | None) -> NewEvent:
    """The one event that ends `run` (its record, as ended), under the fixed id "<run_id>~end"."""
    data: dict[str, Any] = {"run_id": run["run_id"], "status": status.value}
    if error is not None:
        data["error"] = error
    return NewEvent(
        TERMINAL_EVENT[status], data, run.get("trace_id"), run_event_id(run["run_id"], "end")
    )


def error_info(exc: BaseException, message: str | None = None) -> dict[str, str]:
    """What a run records about an error: the class name and a message, never a traceback."""
    return {"type": type(exc).__name__, "message": message if message is not None else str(exc)}


def run_view(doc: Document) -> dict[str, Any]:
    def when(field: str) -> str | None:
        value = doc.get(field)
        return None if value is None else format_timestamp(value)

    return {
        "run_id": doc["run_id"],
        "session_id": doc["session_id"],
        "agent": doc["agent"],
        "status": doc["status"],
        "trace_id": doc.get("trace_id"),
        "created_at": when("created_at"),
        "started_at": when("started_at"),
        "ended_at": when("ended_at"),
        "error": doc.get("error"),
    }


class RunStore:
    def __init__(self, collections: Collections, *, clock: Clock = utc_now) -> None:
        self._runs = collections.runs
        self._events = collections.events
        self._clock = clock

    async def ensure(
        self,
        run_id: str,
        session_id: str,
        agent: str,
        trace_id: str | None,
        *,
        sub: str | None = None,
    ) -> tuple[Document, bool]:
        """The run's record, created as `queued` when missing; True when this call created it.

        `sub` is the token subject of the caller who started it over HTTP (None otherwise).
        """
        fields: Document = {
            "run_id": run_id,
            "session_id": session_id,
            "agent": agent,
            "trace_id": trace_id,
            "sub": sub,
            "status": RunStatus.QUEUED.value,
            "created_at": self._clock(),
            "attempts": 0,
            # started_at, ended_at and error are absent until set: $min on a missing field sets it
            # (null would sort below every date and win).
        }
        before = await upsert(
            self._runs,
            {"run_id": run_id},
            {"$setOnInsert": fields},
            projection=_NO_ID,
            return_document=ReturnDocument.BEFORE,
        )
        return (fields, True) if before is None else (before, False)

    async def get(self, run_id: str) -> Document | None:
        return await self._runs.find_one({"run_id": run_id}, _NO_ID)

    async def start(self, run_id: str, *, worker: str) -> Document | None:
        """queued (or running, on a retry) -> running; None when the run has already ended."""
        now = self._clock()
        return await self._runs.find_one_and_update(
            {"run_id": run_id, "status": {"$in": [s.value for s in ACTIVE]}},
            {
                "$set": {
                    "status": RunStatus.RUNNING.value,
                    "worker": worker,
                    "attempt_started_at": now,
                },
                "$min": {"started_at": now},
                "$inc": {"attempts": 1},
            },
            projection=_NO_ID,
            return_document=ReturnDocument.AFTER,
        )

    async def finish(
        self,
        run_id: str,
        status: RunStatus,
        error: dict[str, str] | None = None,
        *,
        only_from: tuple[RunStatus, ...] = ACTIVE,
    ) -> Document | None:
        """Move to a terminal status; None when the run is not in one of `only_from`."""
        if not status.terminal:
            raise ValueError(f"{status} is not a terminal status")
        return await self._runs.find_one_and_update(
            {"run_id": run_id, "status": {"$in": [s.value for s in only_from]}},
            {"$set": {"status": status.value, "ended_at": self._clock(), "error": error}},
            projection=_NO_ID,
            return_document=ReturnDocument.AFTER,
        )

    async def abandon(
        self, seen: Document, status: RunStatus, error: dict[str, str] | None
    ) -> Document | None:
        """End a run no worker owns (the reconciler): only if it is still as `seen` (same
        status, same attempt), so a worker that took it meanwhile keeps it."""
        if not status.terminal:
            raise ValueError(f"{status} is not a terminal status")
        return await self._runs.find_one_and_update(
            {"run_id": seen["run_id"], "status": seen["status"], "attempts": seen.get("attempts")},
            {
                "$set": {
                    "status": status.value,
                    "ended_at": self._clock(),
                    "error": error,
                    "ended_by": "reconciler",
                }
            },
            projection=_NO_ID,
            return_document=ReturnDocument.AFTER,
        )

    async def active(
        self,
        *,
        created_before: datetime.datetime,
        limit: int,
        from_created: datetime.datetime | None = None,
    ) -> list[Document]:
        """Queued and running runs created in [from_created, created_before), oldest first
        (index status_created). Page on by passing the last one's created_at as from_created
        (and skipping the run ids already seen: several runs may share a created_at)."""
        created: Document = {"$lt": created_before}
        if from_created is not None:
            created["$gte"] = from_created
        cursor = (
            self._runs.find(
                {"status": {"$in": [s.value for s in ACTIVE]}, "created_at": created},
                _NO_ID,
            )
            .sort([("created_at", 1), ("run_id", 1)])
            .limit(limit)
        )
        return await cursor.to_list()

    async def count_by_status(self) -> dict[str, int]:
        """How many run records each status has (`app stats`)."""
        cursor = await self._runs.aggregate([{"$group": {"_id": "$status", "n": {"$sum": 1}}}])
        return {str(doc["_id"]): int(doc["n"]) async for doc in cursor}

    async def request_cancel(self, run_id: str) -> Document | None:
        """Mark a running run for cancellation (the worker ends it); None unless running."""
        return await self._runs.find_one_and_update(
            {"run_id": run_id, "status": RunStatus.RUNNING.value},
            {"$set": {"cancel_requested_at": self._clock()}},
            projection=_NO_ID,
            return_document=ReturnDocument.AFTER,
        )

    async def has_event(self, event_id: str) -> bool:
        return await self._events.find_one({"event_id": event_id}, {"_id": 1}) is not None

    async def event_ids(self, session_id: str, run_id: str) -> set[str]:
        """Ids of the events a run has written ("<run_id>~<step>"), by range on index event_id."""
        low = run_id + RUN_EVENT_SEPARATOR
        high = run_id + chr(ord(RUN_EVENT_SEPARATOR) + 1)
        cursor = self._events.find(
            {"session_id": session_id, "event_id": {"$gte": low, "$lt": high}},
            {"_id": 0, "event_id": 1},
        )
        return {doc["event_id"] async for doc in cursor}
