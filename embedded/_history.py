"""The embedded server's change-event history: a totally ordered log fed by mongoeco's hub.

mongoeco publishes every committed change to an in-process hub, but only while a watcher is
registered. The history registers one watcher for its whole lifetime and copies the hub's events
into its own bounded log after every command, giving each a sequence number, a cluster time and
a wall time. Resume tokens name a sequence number; a token older than the log answers 286.

mongoeco 4.11 publishes a dropped collection's `invalidate` outside its engine's commit sequence,
taking the token the next commit will bring; the hub then discards that commit as already seen
(one lost change per drop). `SequencedHub` hands those events to the history instead.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from mongoeco.change_streams import ChangeStreamHub
from mongoeco.errors import OperationFailure
from mongoeco.types import ChangeEventSnapshot  # type: ignore[attr-defined]

logger = logging.getLogger(__name__)

type Document = dict[str, Any]
type ClusterTime = tuple[int, int]

# "82" + time (8 hex) + increment (8) + sequence (16) + kind (2) + server epoch (8).
_TOKEN_LENGTH = 2 + 8 + 8 + 16 + 2 + 8
EVENT, INVALIDATE = 0, 1


class CommandError(Exception):
    """A MongoDB command error, answered as `{ok: 0, code, codeName, errmsg}`."""

    def __init__(self, code: int, code_name: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.code_name = code_name

    def to_document(self) -> Document:
        return {"ok": 0.0, "errmsg": str(self), "code": self.code, "codeName": self.code_name}


def history_lost() -> CommandError:
    return CommandError(
        286,
        "ChangeStreamHistoryLost",
        "Resume of change stream was not possible, as the resume point may no longer be in the "
        "oplog.",
    )


@dataclasses.dataclass(frozen=True, slots=True)
class ChangeRecord:
    seq: int
    cluster_time: ClusterTime
    wall_time: datetime.datetime
    snapshot: ChangeEventSnapshot


class SequencedHub(ChangeStreamHub):
    """mongoeco's hub, with the events published outside the commit sequence sent aside."""

    def __init__(self, *, max_retained_events: int) -> None:
        super().__init__(max_retained_events=max_retained_events)
        self.unsequenced: Callable[[ChangeEventSnapshot], None] | None = None

    def publish(
        self,
        *,
        operation_type: str,
        db_name: str,
        coll_name: str,
        document_key: Document,
        full_document: Document | None = None,
        update_description: dict[str, object] | None = None,
    ) -> None:
        if operation_type != "invalidate" or self.unsequenced is None:
            super().publish(
                operation_type=operation_type,
                db_name=db_name,
                coll_name=coll_name,
                document_key=document_key,
                full_document=full_document,
                update_description=update_description,
            )
            return
        snapshot = ChangeEventSnapshot(0, operation_type, db_name, coll_name, document_key)
        self.unsequenced(snapshot)


class ChangeHistory:
    """The retained events, oldest first, with contiguous sequence numbers."""

    def __init__(
        self, hub: SequencedHub, limit: int, *, resume: Mapping[str, Any] | None = None
    ) -> None:
        """`resume`: a `position()` saved by a server that stopped cleanly; its tokens stay
        valid here (there is nothing after them), older ones answer 286."""
        if limit < 1:
            raise ValueError("history_limit must be positive")
        self.epoch = secrets.randbits(32)
        self.on_append: Callable[[ChangeRecord], None] | None = None
        self._hub = hub
        self._hub_offset = hub.current_offset()
        self._limit = limit
        self._slack = limit // 8
        self._records: list[ChangeRecord] = []
        self._last_seq = 0
        self._floor = 0  # resuming after a sequence number below this would skip events
        self._floor_time: ClusterTime = (0, 0)
        self._last_time: ClusterTime = (int(time.time()), 0)
        self._changed = asyncio.Event()
        if resume is not None:
            self.epoch = int(resume["epoch"])
            self._last_seq = self._floor = int(resume["last_seq"])
            self._last_time = self._floor_time = (int(resume["seconds"]), int(resume["inc"]))
        hub.unsequenced = self._append_unsequenced
        hub.register_watcher()

    def position(self) -> dict[str, int]:
        """What a restarted server needs to accept this one's latest resume tokens."""
        seconds, increment = self._last_time
        return {
            "epoch": self.epoch,
            "last_seq": self._last_seq,
            "seconds": seconds,
            "inc": increment,
        }

    @property
    def last_seq(self) -> int:
        return self._last_seq

    def token(
        self, seq: int, cluster_time: ClusterTime | None = None, kind: int = EVENT
    ) -> Document:
        """The resume token for the position after `seq` (an event's own token, or a high-water
        mark at the current cluster time)."""
        seconds, increment = cluster_time or self._high_water_time()
        return {"_data": f"82{seconds:08X}{increment:08X}{seq:016X}{kind:02X}{self.epoch:08X}"}

    def seq_from_token(self, token: object) -> int:
        data = token.get("_data") if isinstance(token, Mapping) else None
        if not isinstance(data, str) or len(data) != _TOKEN_LENGTH or not data.startswith("82"):
            raise CommandError(9, "FailedToParse", f"Bad resume token: {token!r}")
        try:
            seq, epoch = int(data[18:34], 16), int(data[36:], 16)
        except ValueError:
            raise CommandError(9, "FailedToParse", f"Bad resume token: {token!r}") from None
        if epoch != self.epoch or seq > self._last_seq:
            raise history_lost()  # another server's token, or one this server never issued
        return seq

    def seq_before_time(self, cluster_time: ClusterTime) -> int:
        """The position just before the first event at or after `cluster_time`."""
        if self._floor and cluster_time <= self._floor_time:
            raise history_lost()
        for record in self._records:
            if record.cluster_time >= cluster_time:
                return record.seq - 1
        return self._last_seq

    def records_after(self, seq: int) -> Iterator[ChangeRecord]:
        """The retained events after `seq`, oldest first (iterate before the next drain)."""
        if seq < self._floor:
            raise history_lost()
        records = self._records
        start = max(0, seq + 1 - records[0].seq) if records else 0
        return (records[index] for index in range(start, len(records)))

    def drain(self) -> None:
        """Copy every event the hub has published since the last drain."""
        appended = False
        while True:
            try:
                self._hub_offset, snapshot = self._hub.wait_for_event(
                    self._hub_offset, timeout_seconds=0
                )
            except OperationFailure:
                logger.exception("mongoeco's change-stream hub lost events; marking a gap")
                self._hub_offset = self._hub.current_offset()
                self.mark_gap()
                return
            if snapshot is None:
                break
            self._append(snapshot)
            appended = True
        if appended:
            self.notify()

    def mark_gap(self) -> tuple[int, int]:
        """Discard every retained event; return (last sequence before, the gap's sequence)."""
        before = self._last_seq
        self._records.clear()
        self._last_seq += 1
        self._floor = self._last_seq
        self._floor_time = self._last_time = self._next_time()
        self.notify()
        return before, self._last_seq

    def notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        """Until the next drain appends events or `notify()`; at most `timeout` seconds."""
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            return

    def _append_unsequenced(self, snapshot: ChangeEventSnapshot) -> None:
        self.drain()  # what the hub already has came first
        self._append(snapshot)
        self.notify()

    def _append(self, snapshot: ChangeEventSnapshot) -> None:
        self._last_seq += 1
        self._last_time = self._next_time()
        wall = datetime.datetime.now(datetime.UTC)
        record = ChangeRecord(self._last_seq, self._last_time, wall, snapshot)
        self._records.append(record)
        if self.on_append is not None:
            self.on_append(record)
        if len(self._records) > self._limit + self._slack:
            dropped = len(self._records) - self._limit
            oldest_gone = self._records[dropped - 1]
            self._floor, self._floor_time = oldest_gone.seq, oldest_gone.cluster_time
            del self._records[:dropped]

    def _next_time(self) -> ClusterTime:
        now = int(time.time())
        seconds, increment = self._last_time
        return (now, 1) if now > seconds else (seconds, increment + 1)

    def _high_water_time(self) -> ClusterTime:
        return max(self._last_time, (int(time.time()), 0))
